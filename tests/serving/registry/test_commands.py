"""The operator commands: train_demo_model, register_model, distill_defended_model, activate_model_version."""

import json
import math
import re
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from serving.ml import breast_cancer, digits
from serving.ml.artifacts import array_bytes
from serving.ml.dpsgd import dp_epsilon
from serving.registry import demo_models
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import active_version, registry_generation, version_classifier
from tests.serving.helpers import DIGITS_SCHEMA, natural_rows, random_onnx, tabular_schema

pytestmark = pytest.mark.django_db


def _run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _no_training(**kwargs):
    raise AssertionError("train_demo_model trained although nothing was missing")


# --- train_demo_model ------------------------------------------------------------------------------------------


def test_the_demo_registration_made_both_models_with_active_onnx_versions_and_their_data(demo_run):
    for slug in (digits.SLUG, breast_cancer.SLUG):
        demo = demo_run.demos[slug]
        assert set(demo.versions) == {"full", "defended"}
        assert demo.model["reference_rows"] >= 50 and demo.model["heldout_rows"] > 0
        for variant, row in demo.versions.items():
            assert row["is_active"] and row["artifact_format"] == "onnx"
            assert row["artifact_path"] == f"{slug}-{variant}-{row['version']}.onnx"
            assert row["metrics"]["holdout_accuracy"] > 0.9
    # digits: Moat's exported MLPs, with the embedding output. Like any model, neither has a natural-input profile
    # yet: the risk job fits it from the registered data (tests/abuse/test_profiles.py).
    digit_versions = demo_run.demos[digits.SLUG].versions
    assert digit_versions["full"]["embedding_output"] == "embedding"
    assert digit_versions["full"]["input_profile"] == digit_versions["defended"]["input_profile"] == {}
    assert digit_versions["full"]["provenance"]["rows"] == 1797
    # breast-cancer: skl2onnx's probabilities, and a defended model distilled from them.
    cancer = demo_run.demos[breast_cancer.SLUG]
    assert cancer.model["class_labels"] == ["malignant", "benign"]
    assert (cancer.versions["full"]["output_name"], cancer.versions["full"]["output_kind"]) == (
        "probabilities",
        "probabilities",
    )
    assert cancer.versions["defended"]["metrics"]["trainer"] == "distillation"
    assert cancer.versions["defended"]["metrics"]["agreement_with_full"] >= 0.95


def test_the_command_registers_both_demo_models_then_if_missing_does_nothing(model_artifact_dir, demo_run, monkeypatch):
    monkeypatch.setattr(demo_models, "train_demo_models", lambda **kwargs: demo_run.models)

    out, _ = _run("train_demo_model", "--if-missing", "--version", "first")
    monkeypatch.setattr(demo_models, "train_demo_models", _no_training)
    again, err = _run("train_demo_model", "--if-missing")

    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [
        "digits full first",
        "digits defended first",
        "breast-cancer full first",
        "breast-cancer defended first",
    ]
    assert "held-out accuracy" in lines[0] and "agreement with full" in lines[3]
    assert re.fullmatch(r"[\d.]+s in all", lines[4])
    assert again == "" and err.strip() == "The demo models already have active versions: nothing to do."
    assert ModelVersion.objects.filter(is_active=True).count() == ModelVersion.objects.count() == 4


def test_if_missing_registers_only_the_missing_variant(registered_digits, demo_run, monkeypatch):
    defended = registered_digits["defended"]
    ModelVersion.objects.filter(pk=defended.pk).update(is_active=False)
    monkeypatch.setattr(demo_models, "train_demo_models", lambda **kwargs: demo_run.models)

    _run("train_demo_model", "--if-missing", "--version", "again")

    assert active_version(model_slug="digits", variant="defended").version == "again"
    assert active_version(model_slug="digits", variant="full") == registered_digits["full"]
    assert active_version(model_slug="breast-cancer", variant="full").version == "again"  # it had none
    assert ModelVersion.objects.filter(model__slug="digits").count() == 3


def test_a_digits_model_from_before_model_data_gets_its_data_and_onnx_versions(
    model_artifact_dir, demo_run, monkeypatch
):
    MLModel.objects.create(
        slug="digits", description="old", class_labels=digits.CLASS_LABELS, input_schema=DIGITS_SCHEMA, reference_rows=0
    )
    monkeypatch.setattr(demo_models, "train_demo_models", lambda **kwargs: demo_run.models)

    _run("train_demo_model", "--if-missing", "--version", "v")

    model = MLModel.objects.get(slug="digits")
    assert model.reference_rows == 1078 and model.heldout_rows == 450
    assert active_version(model_slug="digits", variant="full").version == "v"


def test_without_if_missing_a_new_pair_replaces_the_active_one(registered_digits, demo_run, monkeypatch):
    monkeypatch.setattr(demo_models, "train_demo_models", lambda **kwargs: demo_run.models)

    _run("train_demo_model", "--version", "next")

    assert {v.version for v in ModelVersion.objects.filter(is_active=True)} == {"next"}
    assert ModelVersion.objects.filter(model__slug="digits").count() == 4


def test_dp_trains_the_defended_digits_variant_with_dp_sgd_and_records_its_budget(model_artifact_dir):
    out, _ = _run("train_demo_model", "--dp", "--version", "private")

    full = active_version(model_slug="digits", variant="full")
    defended = active_version(model_slug="digits", variant="defended")
    assert full.version == "private" and full.dp_epsilon is None
    assert defended.version == "private-dp"
    # 30 epochs of round(1078 / 64) = 17 Poisson-sampled steps at q = 64 / 1078, noise 1.1, delta 1e-5.
    expected = dp_epsilon(sampling_probability=64 / 1078, noise_multiplier=1.1, steps=510, delta=1e-5)
    assert defended.dp_epsilon == pytest.approx(expected) and math.isfinite(expected)
    assert defended.dp_delta == 1e-5
    assert defended.metrics["trainer"] == "dp-sgd"
    assert defended.metrics["dp"]["noise_multiplier"] == 1.1 and defended.metrics["dp"]["clip_norm"] == 1.0
    assert 0.85 <= defended.metrics["holdout_accuracy"] < full.metrics["holdout_accuracy"]
    assert f"DP epsilon {expected:.2f} at delta 1e-05" in out


@pytest.mark.parametrize(
    "args", [("--dp-noise-multiplier", "0"), ("--dp-clip", "-1"), ("--dp-delta", "1"), ("--dp-noise-multiplier", "nan")]
)
def test_dp_settings_are_checked(args):
    with pytest.raises(CommandError, match="--dp-noise-multiplier > 0"):
        _run("train_demo_model", "--dp", *args)
    assert MLModel.objects.count() == 0


def test_the_registered_demo_models_serve_the_accuracy_they_recorded(registered_breast_cancer):
    split = breast_cancer.load_split()
    for version in registered_breast_cancer.values():
        classifier = version_classifier(version=version)
        schema = classifier.schema
        top1 = classifier.logits(schema.values(schema.codes(split.X_test))).argmax(axis=1)
        assert np.mean(top1 == split.y_test) == pytest.approx(version.metrics["holdout_accuracy"])


# --- register_model ----------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path, model_artifact_dir) -> dict[str, Path]:
    """An operator's files for a 64-feature, 10-class model: graph, schema, reference data, held-out CSV."""
    paths = {
        "onnx": tmp_path / "model.onnx",
        "schema": tmp_path / "schema.json",
        "reference": tmp_path / "natural.npy",
        "heldout": tmp_path / "heldout.csv",
    }
    paths["onnx"].write_bytes(random_onnx())
    paths["schema"].write_text(json.dumps(DIGITS_SCHEMA))
    paths["reference"].write_bytes(array_bytes(natural_rows()))
    rows = natural_rows(60, seed=2)
    lines = [",".join([*(f"pixel_{i // 8}_{i % 8}" for i in range(64)), "label"])]
    lines += [",".join([*(str(v) for v in row), str(i % 10)]) for i, row in enumerate(rows)]
    paths["heldout"].write_text("\n".join(lines))
    return paths


def _register(files: dict[str, Path], *extra: str, slug: str = "shapes", version: str = "1") -> tuple[str, str]:
    return _run(
        "register_model",
        slug,
        "--onnx", str(files["onnx"]),
        "--schema", str(files["schema"]),
        "--classes", ",".join(str(d) for d in range(10)),
        "--reference-data", str(files["reference"]),
        "--heldout", str(files["heldout"]),
        "--output-name", "logits",
        "--variant", "full",
        "--version", version,
        *extra,
    )  # fmt: skip


def test_register_model_creates_the_model_registers_and_activates_with_its_watermark_figures(
    files, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _register(files, "--activate", "--description", "Shapes")

    version = active_version(model_slug="shapes", variant="full")
    assert version.version == "1" and version.model.description == "Shapes"
    assert version.model.heldout_rows == 60 and version.metrics["holdout_rows"] == 60
    assert out.splitlines()[0].startswith(
        "Registered shapes full 1 (active): input 'x' (flat), output 'logits' (logits), held-out accuracy "
    )
    # One line per watermarking tier: the honest cost bound, measured on the reference inputs.
    assert re.search(
        r"  Free: watermark on [\d.]+% of the reference inputs, [\d.]+% of held-out inputs \(at most 1\.5%\)", out
    )
    assert registry_generation() == 1


def test_register_model_without_activate_leaves_it_inactive_and_later_versions_need_no_description(files):
    _register(files)
    out, _ = _run(
        "register_model", "shapes", "--onnx", str(files["onnx"]), "--output-name", "logits",
        "--variant", "defended", "--version", "2",
    )  # fmt: skip

    assert "(inactive (activate it with activate_model_version))" in out
    assert ModelVersion.objects.filter(model__slug="shapes", is_active=False).count() == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"onnx": b"not a graph"}, "The file is not an ONNX model (it does not parse as one)."),
        ({"onnx": random_onnx(inputs=30)}, "The graph's input 'x' has shape [?, 30]"),
        ({"schema": b"{not json"}, "is not JSON"),
        ({"schema": json.dumps(tabular_schema(64, step=0.3)).encode()}, "is not a whole number of steps (0.3)"),
        ({"reference": b"\x93NUMPY garbage"}, "The reference data is not a .npy array of numbers"),
        ({"reference": array_bytes(natural_rows(10))}, "holds 10 inputs; give at least 50"),
        ({"heldout": b"a,b\n1,2"}, "The held-out set's header has no 'label' column."),
    ],
)
def test_register_model_refuses_bad_files_with_one_sentence_and_records_nothing(files, change, message):
    for name, content in change.items():
        files[name].write_bytes(content)

    with pytest.raises(CommandError) as refused:
        _register(files, "--activate")

    assert message in str(refused.value)
    assert MLModel.objects.count() == ModelVersion.objects.count() == 0


def test_register_model_names_the_missing_description_of_a_new_model(files):
    with pytest.raises(CommandError, match="creating it needs the classes, the schema, the reference data"):
        _run("register_model", "new", "--onnx", str(files["onnx"]), "--variant", "full", "--version", "1")


def test_register_model_refuses_a_duplicate(files):
    _register(files)
    with pytest.raises(CommandError, match="exists, or its file name"):
        _register(files)
    assert ModelVersion.objects.count() == 1


# --- distill_defended_model ----------------------------------------------------------------------------------------


def test_distill_defended_model_trains_and_registers_a_defended_version_of_any_model(files, tmp_path):
    _register(files, "--activate")

    out, _ = _run("distill_defended_model", "shapes", "--version", "d1", "--activate", "--epochs", "5")

    defended = active_version(model_slug="shapes", variant="defended")
    assert defended.version == "d1" and defended.output_kind == "logits" and defended.embedding_output == "embedding"
    assert defended.metrics["trainer"] == "distillation" and defended.metrics["teacher_version"] == "1"
    assert 0 <= defended.metrics["agreement_with_full"] <= 1 and defended.metrics["agreement_rows"] == 60
    assert out.startswith("Registered shapes defended d1 (active): hidden [40], agreement with the full model ")


def test_distill_needs_an_active_full_version(files):
    _register(files)
    with pytest.raises(CommandError, match="no active full version to distil from"):
        _run("distill_defended_model", "shapes")
    with pytest.raises(CommandError, match="No model 'absent'"):
        _run("distill_defended_model", "absent")


# --- activate_model_version ----------------------------------------------------------------------------------------


def test_activate_model_version_switches_and_bumps_the_generation(files, django_capture_on_commit_callbacks):
    _register(files, version="1")
    _register(files, version="2")

    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _run("activate_model_version", "shapes", "--variant", "full", "--version", "2")
    assert active_version(model_slug="shapes", variant="full").version == "2"
    assert out.splitlines()[0] == "shapes full 2 is now the active full version of shapes."
    assert registry_generation() == 1

    with django_capture_on_commit_callbacks(execute=True):
        _run("activate_model_version", "shapes", "--variant", "full", "--version", "1")
    assert active_version(model_slug="shapes", variant="full").version == "1"
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    assert registry_generation() == 2


def test_activate_model_version_of_an_unknown_version_fails(registered_digits):
    with pytest.raises(CommandError, match="No version 'nope'"):
        _run("activate_model_version", "digits", "--variant", "full", "--version", "nope")
