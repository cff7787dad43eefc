"""The operator commands: train_demo_model, register_model_version, activate_model_version."""

import json
import math
import re
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from serving.ml.dpsgd import dp_epsilon
from serving.ml.mlp import accuracy
from serving.registry.management.commands import train_demo_model
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import active_version, artifact_dir, registry_generation
from serving.registry.services import model_get_or_create_digits
from tests.serving.helpers import random_weights, write_artifact

pytestmark = pytest.mark.django_db


def _run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _no_training(**kwargs):
    raise AssertionError("train_demo_model trained although nothing was missing")


# --- train_demo_model ------------------------------------------------------------------------------------------


def test_train_demo_model_registered_both_active_versions_with_metrics_and_artifacts(demo_run):
    # The session's real run (tests/serving/conftest.py), inspected here.
    rows = demo_run.rows
    assert set(rows) == {"full", "defended"}
    version = rows["full"]["version"]
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-\d{6}", version)
    for variant, row in rows.items():
        assert row["is_active"]
        assert row["artifact_path"] == f"digits-{variant}-{version}.npz"
        assert row["dp_epsilon"] is None and row["dp_delta"] is None
        assert row["provenance"]["rows"] == 1797
    lines = demo_run.stdout.splitlines()
    assert lines[0].startswith(f"digits full {version}: held-out accuracy ")
    assert lines[1].startswith(f"digits defended {version}: held-out accuracy ")
    assert lines[2].startswith("trained in ")
    # The demo model's natural-input profile goes with both versions, for abuse detection.
    assert rows["full"]["input_profile"] == rows["defended"]["input_profile"] != {}


def test_if_missing_does_nothing_when_every_variant_is_active(registered_digits, monkeypatch):
    monkeypatch.setattr(train_demo_model, "train_demo_models", _no_training)

    out, err = _run("train_demo_model", "--if-missing")

    assert out == ""
    assert err.strip() == "The digits model already has active versions: nothing to do."
    assert ModelVersion.objects.count() == 2


def test_if_missing_registers_the_model_when_there_is_none_then_is_idempotent(demo_run, monkeypatch):
    monkeypatch.setattr(train_demo_model, "train_demo_models", lambda **kwargs: demo_run.models)

    out, _ = _run("train_demo_model", "--if-missing", "--version", "first")
    monkeypatch.setattr(train_demo_model, "train_demo_models", _no_training)
    _run("train_demo_model", "--if-missing")

    assert ModelVersion.objects.filter(is_active=True).count() == 2
    assert ModelVersion.objects.count() == 2
    assert active_version(model_slug="digits", variant="full").version == "first"
    assert "digits full first" in out and "digits defended first" in out


def test_if_missing_registers_only_the_missing_variant(registered_digits, demo_run, monkeypatch):
    defended = registered_digits["defended"]
    ModelVersion.objects.filter(pk=defended.pk).update(is_active=False)
    monkeypatch.setattr(train_demo_model, "train_demo_models", lambda **kwargs: demo_run.models)

    _run("train_demo_model", "--if-missing", "--version", "again")

    assert active_version(model_slug="digits", variant="defended").version == "again"
    assert active_version(model_slug="digits", variant="full") == registered_digits["full"]
    assert ModelVersion.objects.count() == 3


def test_without_if_missing_a_new_pair_replaces_the_active_one(registered_digits, demo_run, monkeypatch):
    monkeypatch.setattr(train_demo_model, "train_demo_models", lambda **kwargs: demo_run.models)

    _run("train_demo_model", "--version", "next")

    assert {v.version for v in ModelVersion.objects.filter(is_active=True)} == {"next"}
    assert ModelVersion.objects.count() == 4


def test_dp_trains_the_defended_variant_with_dp_sgd_and_records_its_budget(model_artifact_dir):
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


# --- register_model_version --------------------------------------------------------------------------------------


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "operator.npz"
    write_artifact(path)
    return path


def test_register_model_version_registers_and_activates_with_metrics(npz, tmp_path, django_capture_on_commit_callbacks):
    model_get_or_create_digits()
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"holdout_accuracy": 0.91}))

    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _run(
            "register_model_version", "digits", str(npz), "--variant", "defended", "--version", "op-1",
            "--activate", "--metrics-json", str(metrics),
        )  # fmt: skip

    version = active_version(model_slug="digits", variant="defended")
    assert version.version == "op-1" and version.metrics == {"holdout_accuracy": 0.91}
    assert out.strip() == f"Registered digits defended op-1 (active), sha256 {version.artifact_sha256}."
    assert (artifact_dir() / "digits-defended-op-1.npz").exists()
    assert registry_generation() == 1


def test_register_model_version_without_activate_leaves_it_inactive(npz):
    model_get_or_create_digits()

    out, _ = _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", "op-1")

    assert "(inactive (activate it with activate_model_version))" in out
    assert ModelVersion.objects.get().is_active is False


def test_register_model_version_fits_the_input_profile_from_reference_inputs(npz, tmp_path):
    from abuse.extraction import InputProfile
    from serving.ml.digits import load_digits_split

    model_get_or_create_digits()
    reference = tmp_path / "natural.npy"
    np.save(reference, load_digits_split(seed=0).X_train)

    _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", "op-1",
         "--reference-inputs", str(reference))  # fmt: skip

    profile = InputProfile.from_dict(ModelVersion.objects.get().input_profile)
    assert profile.mean.shape == (64,) and profile.distance_q99 > 0


@pytest.mark.parametrize("rows", [np.zeros(64), np.zeros((10, 64)), np.full((200, 64), np.nan)])
def test_register_model_version_refuses_unusable_reference_inputs(npz, tmp_path, rows):
    model_get_or_create_digits()
    reference = tmp_path / "natural.npy"
    np.save(reference, rows)
    with pytest.raises(CommandError, match="--reference-inputs must hold"):
        _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", "op-1",
             "--reference-inputs", str(reference))  # fmt: skip
    assert not ModelVersion.objects.exists()


def test_register_model_version_needs_an_existing_model(npz):
    with pytest.raises(CommandError, match="No model 'digits'"):
        _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", "1")


def test_register_model_version_can_create_the_model(npz):
    _run(
        "register_model_version", "custom", str(npz), "--variant", "full", "--version", "1", "--activate",
        "--create-model", "--description", "Our own digits", "--classes", "0,1,2,3,4,5,6,7,8,9",
    )  # fmt: skip

    model = MLModel.objects.get(slug="custom")
    assert model.description == "Our own digits"
    assert model.class_labels == [str(d) for d in range(10)]
    assert model.input_shape == [64] and (model.input_min, model.input_max) == (0.0, 16.0)
    assert active_version(model_slug="custom", variant="full").version == "1"


def test_a_refused_artifact_creates_neither_model_nor_version(tmp_path):
    wrong = tmp_path / "wrong.npz"
    write_artifact(wrong, random_weights(inputs=32))

    with pytest.raises(CommandError, match="takes 32 inputs; the model takes 64"):
        _run(
            "register_model_version", "custom", str(wrong), "--variant", "full", "--version", "1",
            "--create-model", "--classes", "0,1,2,3,4,5,6,7,8,9",
        )  # fmt: skip

    assert MLModel.objects.count() == 0 and ModelVersion.objects.count() == 0


def test_create_model_refuses_an_existing_model(npz):
    model_get_or_create_digits()

    with pytest.raises(CommandError, match="already exists"):
        _run(
            "register_model_version", "digits", str(npz), "--variant", "full", "--version", "1",
            "--create-model", "--classes", "0,1,2,3,4,5,6,7,8,9",
        )  # fmt: skip


@pytest.mark.parametrize(("content", "message"), [("not json", "Cannot read metrics"), ("[1, 2]", "JSON object")])
def test_metrics_must_be_a_json_object(npz, tmp_path, content, message):
    model_get_or_create_digits()
    metrics = tmp_path / "metrics.json"
    metrics.write_text(content)

    with pytest.raises(CommandError, match=message):
        _run(
            "register_model_version", "digits", str(npz), "--variant", "full", "--version", "1",
            "--metrics-json", str(metrics),
        )  # fmt: skip
    assert ModelVersion.objects.count() == 0


def test_register_model_version_refuses_a_duplicate(npz):
    model_get_or_create_digits()
    _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", "1")

    with pytest.raises(CommandError, match="exists"):
        _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", "1")


# --- activate_model_version --------------------------------------------------------------------------------------


def test_activate_model_version_switches_and_bumps_the_generation(npz, django_capture_on_commit_callbacks):
    model_get_or_create_digits()
    for version in ("1", "2"):
        _run("register_model_version", "digits", str(npz), "--variant", "full", "--version", version)

    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _run("activate_model_version", "digits", "--variant", "full", "--version", "2")
    assert active_version(model_slug="digits", variant="full").version == "2"
    assert out.strip() == "digits full 2 is now the active full version of digits."
    assert registry_generation() == 1

    with django_capture_on_commit_callbacks(execute=True):
        _run("activate_model_version", "digits", "--variant", "full", "--version", "1")
    assert active_version(model_slug="digits", variant="full").version == "1"
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    assert registry_generation() == 2


def test_activate_model_version_of_an_unknown_version_fails(registered_digits):
    with pytest.raises(CommandError, match="No version 'nope'"):
        _run("activate_model_version", "digits", "--variant", "full", "--version", "nope")


def test_the_registered_demo_models_serve_the_accuracy_they_recorded(registered_digits, demo_run):
    from serving.ml.artifacts import load_artifact
    from serving.ml.digits import load_digits_split
    from serving.registry.selectors import version_artifact_file

    split = load_digits_split(seed=0)
    for version in registered_digits.values():
        weights = load_artifact(version_artifact_file(version=version), expected_sha256=version.artifact_sha256)
        assert accuracy(weights, split.X_test, split.y_test) == pytest.approx(version.metrics["holdout_accuracy"])
