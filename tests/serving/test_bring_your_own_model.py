"""Bring your own model, end to end: ONNX classifiers made here, outside Moat's training code (a scikit-learn
ensemble on 30 tabular features converted with skl2onnx, a small PyTorch CNN on 28x28 images exported with
torch.onnx), registered with the operator's commands, served by the real web server to free, pro and enterprise keys
with each tier's answer shape, and their watermark verified: a copy trained on public answers is flagged, an
independent model is not."""

import base64
import csv
import io
import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import requests
from django.core.management import call_command
from PIL import Image

from serving.ml.artifacts import array_bytes
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.processes import web_server
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)

TIERS = ("free", "pro", "enterprise")


# --- the operators' models ------------------------------------------------------------------------------------------


def _split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training, held-out and public row numbers: 60/25/15 per class."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        cut = [round(0.6 * members.size), round(0.85 * members.size)]
        for part, rows in zip(parts, np.split(members, cut), strict=True):
            part.append(rows)
    return tuple(np.sort(np.concatenate(part)) for part in parts)


@pytest.fixture(scope="module")
def tabular(tmp_path_factory) -> dict:
    """A gradient-boosted ensemble on the Wisconsin breast-cancer data, as an operator exports it with skl2onnx."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    folder = tmp_path_factory.mktemp("tabular")
    data = load_breast_cancer()
    X, y = data.data, data.target
    train, heldout, public = _split(y, seed=1)
    forest = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0).fit(X[train], y[train])
    graph = to_onnx(
        forest,
        initial_types=[("features", FloatTensorType([None, 30]))],
        options={id(forest): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # Every feature from 0 to twice its largest value, on a grid of 0.0001: some features need 4-byte codes.
    schema = {
        "kind": "tabular",
        "features": [
            {"name": str(name), "min": 0.0, "max": float(math.ceil(2 * high)), "step": 0.0001}
            for name, high in zip(data.feature_names, X.max(axis=0), strict=True)
        ],
    }
    paths = {name: folder / name for name in ("model.onnx", "schema.json", "reference.npy", "heldout.csv")}
    paths["model.onnx"].write_bytes(graph.SerializeToString())
    paths["schema.json"].write_text(json.dumps(schema))
    paths["reference.npy"].write_bytes(array_bytes(X[train]))
    with paths["heldout.csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, "label"])
        writer.writerows([*row, data.target_names[label]] for row, label in zip(X[heldout], y[heldout], strict=True))
    return {"paths": paths, "X": X, "y": y, "public": public, "classes": [str(c) for c in data.target_names]}


def _upscale(digits: np.ndarray) -> np.ndarray:
    """8x8 digits (0..16) as 28x28 images (0..1): each pixel 3x3, centred with 2 pixels of border."""
    images = np.kron(digits.reshape(-1, 8, 8) / 16.0, np.ones((3, 3)))
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> dict:
    """A small CNN on 28x28 grayscale digits, trained here with PyTorch and exported with torch.onnx (NCHW, a
    dynamic batch axis, the logits and the penultimate layer as outputs)."""
    import torch
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("image")
    digits = load_digits()
    X, y = _upscale(digits.data), digits.target
    train, heldout, public = _split(y, seed=2)

    class SmallCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 8, 5, stride=2)
            self.hidden = torch.nn.Linear(8 * 12 * 12, 32)
            self.out = torch.nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            embedding = torch.relu(self.hidden(torch.relu(self.conv(x)).flatten(1)))
            return self.out(embedding), embedding

    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread: the same sums in the same order, the same model every run
    net = SmallCNN()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    inputs = torch.tensor(X[train], dtype=torch.float32).unsqueeze(1)
    targets = torch.tensor(y[train])
    for _ in range(15):
        for batch in torch.randperm(len(train)).split(64):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(net(inputs[batch])[0], targets[batch]).backward()
            optimiser.step()
    net.eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        net, (torch.zeros(1, 1, 28, 28),), buffer, input_names=["image"], output_names=["logits", "embedding"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}}, dynamo=False,
        opset_version=17,
    )  # fmt: skip
    schema = {
        "kind": "image", "height": 28, "width": 28, "channels": 1, "min": 0.0, "max": 1.0,
        "preprocessing": {"fit": "ink_box", "margin": 2 / 28, "invert": "auto", "normalize_peak": True},
    }  # fmt: skip
    paths = {name: folder / name for name in ("model.onnx", "schema.json", "reference.npy", "heldout.npz")}
    paths["model.onnx"].write_bytes(buffer.getvalue())
    paths["schema.json"].write_text(json.dumps(schema))
    paths["reference.npy"].write_bytes(array_bytes(X[train].reshape(-1, 28, 28)))
    with paths["heldout.npz"].open("wb") as handle:
        np.savez(handle, inputs=X[heldout].reshape(-1, 784), labels=y[heldout])
    return {"paths": paths, "X": X.reshape(-1, 784), "y": y, "public": public, "classes": [str(d) for d in range(10)]}


def _register(slug: str, model: dict, *extra: str) -> str:
    out = StringIO()
    paths = model["paths"]
    heldout = paths.get("heldout.csv") or paths["heldout.npz"]
    call_command(
        "register_model", slug, "--onnx", str(paths["model.onnx"]), "--schema", str(paths["schema.json"]),
        "--classes", ",".join(model["classes"]), "--reference-data", str(paths["reference.npy"]),
        "--heldout", str(heldout), "--variant", "full", "--version", "1", "--activate", *extra, stdout=out,
    )  # fmt: skip
    call_command("distill_defended_model", slug, "--version", "d1", "--activate", "--epochs", "10", stdout=out)
    return out.getvalue()


# --- serving -------------------------------------------------------------------------------------------------------


@pytest.fixture
def keys() -> dict[str, str]:
    """A key per tier, the rate windows opened wide: this test is about what each tier is answered."""
    Tier.objects.update(requests_per_minute=1_000_000, requests_per_hour=1_000_000, requests_per_day=1_000_000)
    return {
        code: raw_key_for(
            member(organization=OrganizationFactory(tier=Tier.objects.get(code=code))).membership.organization
        )
        for code in TIERS
    }


def _predict(base_url: str, key: str, slug: str, body: dict) -> requests.Response:
    return requests.post(
        f"{base_url}/v1/models/{slug}/predict", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _labels(base_url: str, key: str, slug: str, rows: np.ndarray) -> list[str]:
    labels: list[str] = []
    for start in range(0, rows.shape[0], 100):
        response = _predict(base_url, key, slug, {"inputs": rows[start : start + 100].tolist()})
        assert response.status_code == 200, response.text
        labels += [p["label"] for p in response.json()["predictions"]]
    return labels


def _each_tier_gets_its_answer_shape(base_url: str, keys: dict[str, str], slug: str, rows: list, classes: list[str]):
    for tier, key in keys.items():
        response = _predict(base_url, key, slug, {"inputs": rows})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == slug and body["version"] == ("1" if tier == "enterprise" else "d1")
        for prediction in body["predictions"]:
            assert prediction["label"] in classes
            if tier == "enterprise":
                assert set(prediction) == {"label", "confidence", "probabilities"}
                assert len(prediction["probabilities"]) == len(classes)
                assert math.fsum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-5)
            else:
                assert set(prediction) == {"label", "confidence"}
                decimals = 1 if tier == "free" else 2
                assert round(prediction["confidence"], decimals) == prediction["confidence"]


def _verify(slug: str, rows: np.ndarray, labels: list[str], schema_names: list[str], folder: Path) -> dict:
    path = folder / f"{slug}-suspect.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*schema_names, "label"])
        writer.writerows([*row.tolist(), label] for row, label in zip(rows, labels, strict=True))
    out = StringIO()
    call_command("verify_watermark", "--csv", str(path), "--model", slug, "--json", stdout=out)
    return json.loads(out.getvalue())


def _nearest(train: np.ndarray, labels: list[str], rows: np.ndarray) -> list[str]:
    """The thief's copy: 1-nearest-neighbour on the answers it bought (features standardised)."""
    scale = train.std(axis=0) + 1e-9
    a, b = train / scale, rows / scale
    nearest = ((b**2).sum(axis=1)[:, None] - 2 * b @ a.T + (a**2).sum(axis=1)[None, :]).argmin(axis=1)
    return [labels[i] for i in nearest]


def test_a_scikit_learn_ensemble_on_30_features_is_served_defended_and_its_copy_proven(tabular, keys, tmp_path):
    out = _register("tumours", tabular, "--description", "Tumour classifier")
    assert "output 'probabilities' (probabilities)" in out and "held-out accuracy" in out
    X, y, classes = tabular["X"], tabular["y"], tabular["classes"]
    names = json.loads(tabular["paths"]["schema.json"].read_text())["features"]

    with web_server(log_path=tmp_path / "web.log") as (base_url, _):
        listed = requests.get(f"{base_url}/v1/models", headers={"Authorization": f"Bearer {keys['pro']}"}, timeout=30)
        (model,) = [m for m in listed.json()["models"] if m["id"] == "tumours"]
        assert model["classes"] == classes and model["input"]["kind"] == "tabular"
        assert model["input"]["shape"] == [30] and [f["name"] for f in model["input"]["features"]][:1] == [
            "mean radius"
        ]
        _each_tier_gets_its_answer_shape(base_url, keys, "tumours", X[:3].tolist(), classes)

        refused = _predict(base_url, keys["pro"], "tumours", {"inputs": [X[0].tolist(), [*X[1, :29].tolist(), -1.0]]})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"].startswith("inputs[1]: feature 'worst fractal dimension' is -1")
        picture = _predict(base_url, keys["pro"], "tumours", {"image": "aGVsbG8="})
        assert picture.status_code == 400 and "takes numbers, not pictures" in picture.json()["error"]["message"]

        # The thief: 3,000 natural inputs (its public rows and variants of them) bought on pro.
        rng = np.random.default_rng(7)
        own = X[tabular["public"]]
        queries = own[rng.integers(0, own.shape[0], 3000)] * rng.uniform(0.97, 1.03, (3000, 30))
        queries = np.round(queries, 4)
        bought = _labels(base_url, keys["pro"], "tumours", queries)

    copy = _verify("tumours", queries, _nearest(queries, bought, queries), [f["name"] for f in names], tmp_path)
    truth = _verify("tumours", queries, _nearest(own, [classes[i] for i in y[tabular["public"]]], queries),
                    [f["name"] for f in names], tmp_path)  # fmt: skip
    assert copy["verdict"] is True and copy["p_value"] < 0.01 and copy["regions"] >= 5, json.dumps(copy)
    assert truth["verdict"] is False


def test_a_pytorch_cnn_on_28x28_images_is_served_defended_and_its_copy_proven(image, keys, tmp_path):
    out = _register("shapes", image, "--output-name", "logits", "--embedding-output", "embedding")
    assert "input 'image' (NCHW), output 'logits' (logits)" in out
    X, y, classes = image["X"], image["y"], image["classes"]

    with web_server(log_path=tmp_path / "web.log") as (base_url, _):
        nested = [X[i].reshape(28, 28).tolist() for i in range(3)]
        _each_tier_gets_its_answer_shape(base_url, keys, "shapes", nested, classes)
        # A picture of any size becomes one input, as the schema's preprocessing says.
        buffer = io.BytesIO()
        Image.fromarray((255 - X[0].reshape(28, 28) * 255).astype(np.uint8)).resize((200, 200)).save(buffer, "PNG")
        picture = _predict(
            base_url, keys["enterprise"], "shapes", {"image": base64.b64encode(buffer.getvalue()).decode()}
        )
        assert picture.status_code == 200 and len(picture.json()["predictions"]) == 1
        wrong = _predict(base_url, keys["pro"], "shapes", {"inputs": [X[0].reshape(28, 28)[:27].tolist()]})
        assert (
            wrong.status_code == 400
            and "nested list of shape 27x28; each input is 28x28" in wrong.json()["error"]["message"]
        )

        # The thief: 3,000 natural images, its public digits shifted by a pixel or two, lighter or heavier, noisier.
        rng = np.random.default_rng(8)
        own = X[image["public"]]
        picked = own[rng.integers(0, own.shape[0], 3000)].reshape(-1, 28, 28)
        shifts = rng.integers(-2, 3, (3000, 2))
        shifted = np.stack([np.roll(img, tuple(shift), axis=(0, 1)) for img, shift in zip(picked, shifts, strict=True)])
        noisy = shifted.reshape(-1, 784) * rng.uniform(0.8, 1.2, (3000, 1)) + rng.normal(0, 0.03, (3000, 784))
        queries = np.round(np.clip(noisy, 0, 1) * 255) / 255
        bought = _labels(base_url, keys["pro"], "shapes", queries)

    names = [f"pixel_{p // 28}_{p % 28}" for p in range(784)]
    copy = _verify("shapes", queries, _nearest(queries, bought, queries), names, tmp_path)
    truth = _verify(
        "shapes", queries, _nearest(own, [classes[i] for i in y[image["public"]]], queries), names, tmp_path
    )
    assert copy["verdict"] is True and copy["p_value"] < 0.01, json.dumps(copy)
    assert truth["verdict"] is False
