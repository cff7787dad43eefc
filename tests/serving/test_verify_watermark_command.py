"""`manage.py verify_watermark`: the operator's check of a suspect model, from a CSV of its answers or a live API, for
any registered model."""

import csv
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from serving.defenses import DefenseConfig, apply_defenses
from serving.ml.digits import augment_digits, load_digits_split
from serving.ml.mlp import MLPWeights
from serving.ml.onnx_export import binding_for, mlp_to_onnx
from serving.predictions.management.commands.verify_watermark import Command
from serving.registry.services import binding_kwargs, version_register
from serving.watermark import RegionWatermark
from tests.serving.defense_helpers import digits_reference
from tests.serving.helpers import DIGITS, create_model

pytestmark = pytest.mark.django_db

SECRET = "command-test-watermark-secret"
LABELS = [str(i) for i in range(10)]


class LinearModel:
    """Our model: a fixed random linear map of the 64 pixels to 10 logits (registered as a one-layer ONNX graph)."""

    def __init__(self, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(64, 10))

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return rows.astype(np.float64) @ self.weights

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return self.logits(rows).argmax(axis=1)


MODEL = LinearModel()


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.WATERMARK_SECRET = SECRET


@pytest.fixture
def registered(model_artifact_dir) -> None:
    """`digits` in the registry: our linear model as its active full version, the digits' training rows as its
    reference data."""
    weights = MLPWeights(weights=(MODEL.weights,), biases=(np.zeros(10),), input_low=0.0, input_high=1.0)
    model = create_model(reference=digits_reference())
    version_register(
        model=model, variant="full", version="t1", onnx_bytes=mlp_to_onnx(weights), activate=True,
        **binding_kwargs(binding_for(weights)),
    )  # fmt: skip


def _regions() -> RegionWatermark:
    """The regions the command fits: the model's reference data under the server's secret."""
    return RegionWatermark.fit(DIGITS, digits_reference(), secret=SECRET.encode(), n_classes=10)


def _run(*args: str) -> str:
    out = StringIO()
    call_command(Command(), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _thief_answers(rows: np.ndarray) -> list[str]:
    """What a copy trained on our public answers says: exactly the defended answers (watermarks included)."""
    answers = apply_defenses(
        MODEL.logits(rows),
        rows,
        config=DefenseConfig(),  # a public tier's: the command's default fraction
        class_labels=LABELS,
        noise_secret=b"noise",
        watermark=_regions(),
    )
    return [a.label for a in answers]


def _write_csv(path: Path, rows: np.ndarray, labels: list[str], *, header: bool) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["label", *DIGITS.feature_names])
            writer.writerows([label, *row.tolist()] for row, label in zip(rows, labels, strict=True))
        else:
            writer.writerows([*row.tolist(), label] for row, label in zip(rows, labels, strict=True))
    return path


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    """Natural digits: variants of the real ones, as thieves and honest users send."""
    rng = np.random.default_rng(seed)
    split = load_digits_split()
    digits = np.concatenate([split.X_train, split.X_public, split.X_test])
    return augment_digits(digits[rng.integers(0, digits.shape[0], n)], rng)


def _tested_inputs(rows: np.ndarray) -> int:
    """How many rows lie in marked regions whose class is not the majority of our labels there."""
    watermark = _regions()
    regions = watermark.regions(rows, 10)
    marked = watermark.marked(regions.keys, fraction=DefenseConfig().watermark_fraction)
    clean, total = MODEL.labels(rows), 0
    for cells in {c.tobytes() for c in regions.cells[marked]}:
        members = np.flatnonzero([c.tobytes() == cells for c in regions.cells])
        if regions.labels[members[0]] != np.bincount(clean[members], minlength=10).argmax():
            total += members.size
    return total


# --- CSV mode ------------------------------------------------------------------------------------------------------


def test_csv_of_a_thiefs_answers_is_flagged_in_json(tmp_path, registered):
    rows = _inputs(5000)
    path = _write_csv(tmp_path / "suspect.csv", rows, _thief_answers(rows), header=True)

    result = json.loads(_run("--csv", str(path), "--json"))

    assert result["inputs"] == np.unique(rows, axis=0).shape[0]
    assert result["matches"] == _tested_inputs(np.unique(rows, axis=0)) > 10  # it answers them all as we did
    assert result["regions"] >= 3 and result["watermark_inputs"] >= result["matches"]
    assert result["expected_matches"] < result["matches"] / 5
    assert result["p_value"] < 1e-4
    assert result["verdict"] is True
    assert (result["model"], result["variant"], result["source"]) == ("digits", "full", str(path))


def test_csv_of_an_independent_model_is_not_flagged_and_the_summary_says_so(tmp_path, registered):
    rows = _inputs(5000)
    path = _write_csv(tmp_path / "honest.csv", rows, [LABELS[i] for i in MODEL.labels(rows)], header=False)

    out = _run("--csv", str(path), "--model", "digits")

    assert "Watermark verification of" in out
    assert "watermark regions:" in out
    assert "not detected" in out


def test_csv_summary_of_a_thief_reports_detection(tmp_path, registered):
    rows = _inputs(3000, seed=4)
    path = _write_csv(tmp_path / "suspect.csv", rows, _thief_answers(rows), header=False)

    out = _run("--csv", str(path))

    assert "WATERMARK DETECTED (p < 0.01)" in out
    assert "p-value (exact, regions):" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no rows"),
        (",".join(["1"] * 64) + "\n", "line 1: expected 65 columns, got 64"),
        (",".join(["x"] * 65) + "\n", "header has no 'label' column"),
        ("label," + ",".join(f"p{i}" for i in range(64)) + "\n", "holds a header but no rows"),
        (",".join(["1"] * 63 + ["a", "3"]) + "\n" + ",".join(["1"] * 65) + "\n", "header has no 'label' column"),
        (",".join(["1"] * 65) + "\n" + ",".join(["1"] * 63 + ["a", "3"]) + "\n", "line 2: a value is not a number"),
        (",".join(["1"] * 63 + ["nan", "3"]) + "\n", "not a finite number"),
        (",".join(["1"] * 63 + ["17", "3"]) + "\n", r"line 1: pixel \(row 7, column 7\) is 17, outside 0 to 16"),
    ],
)
def test_malformed_csv_files_are_refused_with_the_reason(tmp_path, registered, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)

    with pytest.raises(CommandError, match=message):
        _run("--csv", str(path))


def test_a_missing_csv_file_is_refused(tmp_path, registered):
    with pytest.raises(CommandError, match="Cannot read"):
        _run("--csv", str(tmp_path / "missing.csv"))


def test_a_missing_watermark_secret_is_refused(tmp_path, settings, registered):
    del settings.WATERMARK_SECRET
    path = _write_csv(tmp_path / "s.csv", _inputs(3), ["1", "2", "3"], header=False)

    with pytest.raises(CommandError, match="WATERMARK_SECRET is not set"):
        _run("--csv", str(path))


def test_one_source_is_required_and_url_needs_a_key(registered):
    with pytest.raises(CommandError):
        _run("--json")
    with pytest.raises(CommandError, match="--url needs --api-key"):
        _run("--url", "http://127.0.0.1:9")
    with pytest.raises(CommandError, match="http"):
        _run("--url", "file:///etc/passwd", "--api-key", "k", "--probe-count", "1")


# --- URL mode ------------------------------------------------------------------------------------------------------


class _SuspectApi(BaseHTTPRequestHandler):
    """A copy of our API run by a thief on 127.0.0.1: it answers from the answers it bought (`bought`), and its
    own model for anything else (the `fallback`)."""

    bought: dict[bytes, str] = {}
    fallback = staticmethod(lambda rows: [LABELS[i] for i in MODEL.labels(rows)])
    requests: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers["Authorization"], "n": len(body["inputs"])})
        rows = np.array(body["inputs"], dtype=np.float64).astype(np.uint8)
        fallback = type(self).fallback(rows)
        labels = [type(self).bought.get(row.tobytes(), fallback[i]) for i, row in enumerate(rows)]
        payload = json.dumps({"model": "digits", "predictions": [{"label": label} for label in labels]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def suspect_api() -> Iterator[tuple[str, type[_SuspectApi]]]:
    handler = type("Handler", (_SuspectApi,), {"bought": {}, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_url_mode_probes_a_thief_with_its_own_data_set_and_flags_it(tmp_path, registered, suspect_api):
    url, handler = suspect_api
    public = _inputs(6000, seed=8)  # the data set the thief queried us with, which we hold too
    handler.bought = {row.tobytes(): label for row, label in zip(public, _thief_answers(public), strict=True)}
    inputs_csv = _write_csv(tmp_path / "public.csv", public, ["?"] * len(public), header=False)

    result = json.loads(
        _run(
            "--url",
            url + "/",
            "--api-key",
            "moat_live_x",
            "--probe-count",
            "25",
            "--batch-size",
            "10",
            "--inputs",
            str(inputs_csv),
            "--json",
        )
    )

    assert result["inputs"] == 25
    assert result["regions"] >= 3
    assert result["matches"] >= 15  # the base rows themselves, plus variations only a generalising copy matches
    assert result["verdict"] is True
    assert [r["n"] for r in handler.requests] == [10, 10, 5]
    assert {r["path"] for r in handler.requests} == {"/v1/models/digits/predict"}
    assert {r["auth"] for r in handler.requests} == {"Bearer moat_live_x"}


def test_url_mode_does_not_flag_an_honest_api(registered, suspect_api):
    url, handler = suspect_api

    out = _run("--url", url, "--api-key", "k", "--probe-count", "30")

    assert "distinct inputs:          30" in out
    assert "not detected" in out
    assert [r["n"] for r in handler.requests] == [30]


def test_url_mode_reports_http_errors(registered):
    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": "bad key"}')

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(CommandError, match="answered HTTP 401"):
            _run("--url", f"http://127.0.0.1:{server.server_address[1]}", "--api-key", "k", "--probe-count", "1")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the registry path -----------------------------------------------------------------------------------------------


def test_no_active_model_is_an_error(tmp_path, model_artifact_dir):
    create_model()
    path = _write_csv(tmp_path / "s.csv", _inputs(3), ["1", "2", "3"], header=False)

    with pytest.raises(CommandError, match="No active full version of model 'digits'"):
        _run("--csv", str(path))


def test_with_several_models_the_model_is_named(tmp_path, registered):
    create_model(slug="other")
    path = _write_csv(tmp_path / "s.csv", _inputs(3), ["1", "2", "3"], header=False)

    with pytest.raises(CommandError, match=r"Name the model with --model \(digits, other\)"):
        _run("--csv", str(path))
    with pytest.raises(CommandError, match="No model 'absent'"):
        _run("--csv", str(path), "--model", "absent")


def _interpolations(n: int, seed: int) -> np.ndarray:
    """A boundary prober's queries: digits of different classes mixed 30-70%, nothing like a natural digit."""
    rng = np.random.default_rng(seed)
    split = load_digits_split()
    a, b = rng.integers(0, split.X_test.shape[0], (2, 4 * n))
    different = split.y_test[a] != split.y_test[b]
    t = rng.uniform(0.3, 0.7, (int(different.sum()), 1))
    mixed = (1 - t) * split.X_test[a[different]] + t * split.X_test[b[different]]
    return np.clip(np.floor(mixed + 0.5), 0, 16).astype(np.uint8)[:n]


def test_url_mode_probes_from_what_a_suspect_organization_sent_us(registered, suspect_api):
    from abuse.replay import simulated_calls_log
    from abuse.simulation import SimulatedCall
    from tests.factories import OrganizationFactory, member, raw_key_for

    url, handler = suspect_api
    prober = member(organization=OrganizationFactory(name="Prober")).membership.organization
    raw_key_for(prober)
    asked = _interpolations(4_000, seed=3)
    answers = _thief_answers(asked)
    calls = [
        SimulatedCall(at=float(i), inputs=asked[i : i + 100], labels=answers[i : i + 100], confidences=[0.5] * 100)
        for i in range(0, asked.shape[0], 100)
    ]
    simulated_calls_log(calls, organization=prober, start=timezone.now() - timedelta(hours=1))
    # The copy answers what it bought as bought, and anything else as our model would (it learned nothing else).
    handler.bought = {row.tobytes(): label for row, label in zip(asked, answers, strict=True)}

    common = ["--url", url, "--api-key", "k", "--probe-count", "60", "--json"]
    from_natural = json.loads(_run(*common))
    from_its_inputs = json.loads(_run(*common, "--from-organization", str(prober.pk)))

    # Natural probes land in regions the boundary prober never asked about; its own inputs are where it learned.
    assert from_natural["verdict"] is False
    assert from_its_inputs["verdict"] is True and from_its_inputs["p_value"] < 1e-6
    quiet = member(organization=OrganizationFactory(name="Quiet")).membership.organization
    with pytest.raises(CommandError, match=f"Organization {quiet.pk} has no logged inputs of 'digits'"):
        _run(*common, "--from-organization", str(quiet.pk))
