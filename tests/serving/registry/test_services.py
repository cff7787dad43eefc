"""Registry services: verified registration, one active version per variant, atomic switches that tell servers."""

import hashlib
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from core.errors import NotFoundError
from serving.ml.artifacts import load_artifact
from serving.registry.errors import ArtifactRejectedError, InvalidVersionError, ModelExistsError, VersionExistsError
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import (
    active_version,
    artifact_dir,
    model_get,
    model_list,
    registry_generation,
    version_artifact_file,
)
from serving.registry.services import model_create, model_get_or_create_digits, version_activate, version_register
from tests.concurrency import second_waits_for_first
from tests.serving.helpers import DIGIT_LABELS, random_weights, write_artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def digits() -> MLModel:
    return model_get_or_create_digits()


@pytest.fixture
def source(tmp_path) -> Path:
    """A valid digits-shaped artifact outside the artifact directory."""
    path = tmp_path / "upload" / "model.npz"
    path.parent.mkdir()
    write_artifact(path)
    return path


def _register(model, source, *, version="v1", variant="full", activate=False, **extra) -> ModelVersion:
    return version_register(
        model=model,
        variant=variant,
        version=version,
        artifact_file=source,
        metrics={"holdout_accuracy": 0.9},
        provenance={"dataset": "test"},
        activate=activate,
        **extra,
    )


def _active(model, variant) -> list[str]:
    return list(
        ModelVersion.objects.filter(model=model, variant=variant, is_active=True).values_list("version", flat=True)
    )


def test_the_digits_model_is_created_once_with_its_definition():
    first = model_get_or_create_digits()
    second = model_get_or_create_digits()

    assert first.pk == second.pk and MLModel.objects.count() == 1
    assert first.slug == "digits"
    assert first.class_labels == DIGIT_LABELS
    assert first.input_shape == [64] and first.input_min == 0.0 and first.input_max == 16.0


def test_register_and_activate(digits, source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        version = _register(digits, source, activate=True)

    version.refresh_from_db()
    assert version.is_active
    assert version.artifact_path == "digits-full-v1.npz"  # relative to the artifact directory
    copied = artifact_dir() / "digits-full-v1.npz"
    assert copied.read_bytes() == source.read_bytes()
    assert version.artifact_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert version.metrics == {"holdout_accuracy": 0.9} and version.provenance == {"dataset": "test"}
    assert active_version(model_slug="digits", variant="full") == version
    assert active_version(model_slug="digits", variant="defended") is None
    assert (
        load_artifact(version_artifact_file(version=version), expected_sha256=version.artifact_sha256).n_outputs == 10
    )
    assert registry_generation() == 1
    assert not list(artifact_dir().glob("*.part"))


def test_registering_without_activating_leaves_the_active_version_alone(digits, source):
    old = _register(digits, source, version="v1", activate=True)
    new = _register(digits, source, version="v2")

    assert not new.is_active
    assert _active(digits, "full") == ["v1"]
    assert active_version(model_slug="digits", variant="full") == old


def test_activating_another_version_switches_atomically_and_bumps_the_generation(
    digits, source, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        v1 = _register(digits, source, version="v1", activate=True)
        v2 = _register(digits, source, version="v2")
        defended = _register(digits, source, version="d1", variant="defended", activate=True)
    assert registry_generation() == 2

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        version_activate(version=v2)
        # Not before commit: a server reloading now would still read the old state.
        assert registry_generation() == 2
    assert _active(digits, "full") == ["v2"]
    assert _active(digits, "defended") == ["d1"]  # the other variant is untouched
    assert v2.is_active

    for callback in callbacks:
        callback()
    assert registry_generation() == 3

    with django_capture_on_commit_callbacks(execute=True):
        version_activate(version=v1)
    assert _active(digits, "full") == ["v1"]
    assert registry_generation() == 4
    defended.refresh_from_db()
    assert defended.is_active


def test_activating_the_active_version_is_harmless(digits, source):
    v1 = _register(digits, source, activate=True)

    version_activate(version=v1)

    assert _active(digits, "full") == ["v1"]


def test_the_database_allows_only_one_active_version_per_model_and_variant(digits, source):
    _register(digits, source, version="v1", activate=True)
    v2 = _register(digits, source, version="v2")

    with pytest.raises(IntegrityError, match="one_active_version_per_variant"), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(is_active=True)


def test_a_failed_switch_changes_nothing(digits, source):
    _register(digits, source, version="v1", activate=True)
    v2 = _register(digits, source, version="v2")
    (artifact_dir() / v2.artifact_path).write_bytes(b"tampered")

    with pytest.raises(ArtifactRejectedError, match="cannot be activated"):
        version_activate(version=v2)

    assert _active(digits, "full") == ["v1"]
    assert registry_generation() == 0


def test_a_missing_artifact_cannot_be_activated(digits, source):
    v1 = _register(digits, source, version="v1")
    (artifact_dir() / v1.artifact_path).unlink()

    with pytest.raises(ArtifactRejectedError, match="Cannot read"):
        version_activate(version=v1)


@pytest.mark.parametrize(
    ("weights", "labels", "message"),
    [
        (random_weights(inputs=63), None, "takes 63 inputs; the model takes 64"),
        (random_weights(outputs=9), [str(d) for d in range(9)], "class labels"),
        (random_weights(), list("abcdefghij"), "differ from the model's"),
    ],
)
def test_an_artifact_that_does_not_fit_the_model_is_refused(digits, tmp_path, weights, labels, message):
    path = tmp_path / "wrong.npz"
    write_artifact(path, weights, labels)

    with pytest.raises(ArtifactRejectedError, match=message):
        _register(digits, path, activate=True)

    assert ModelVersion.objects.count() == 0
    assert not artifact_dir().exists() or list(artifact_dir().iterdir()) == []


def test_an_unreadable_or_invalid_file_is_refused(digits, tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"garbage")

    with pytest.raises(ArtifactRejectedError, match="Cannot read"):
        _register(digits, tmp_path / "absent.npz")
    with pytest.raises(ArtifactRejectedError, match="not a valid npz"):
        _register(digits, garbage)
    assert ModelVersion.objects.count() == 0


def test_a_duplicate_version_is_refused_and_the_registered_artifact_is_not_overwritten(digits, source, tmp_path):
    first = _register(digits, source, version="v1", activate=True)
    other = tmp_path / "other.npz"
    write_artifact(other, random_weights(seed=9))

    with pytest.raises(VersionExistsError):
        _register(digits, other, version="v1")

    assert ModelVersion.objects.count() == 1
    stored = artifact_dir() / first.artifact_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first.artifact_sha256


def test_colliding_file_names_of_different_versions_are_refused(source, tmp_path):
    # "x" + "full" + "defended-1" and "x-full" + "defended" + "1" would both be x-full-defended-1.npz.
    x = model_create(slug="x", description="", class_labels=DIGIT_LABELS, input_shape=[64], input_min=0, input_max=16)
    x_full = model_create(
        slug="x-full", description="", class_labels=DIGIT_LABELS, input_shape=[64], input_min=0, input_max=16
    )
    first = _register(x, source, version="defended-1", variant="full")
    other = tmp_path / "other.npz"
    write_artifact(other, random_weights(seed=9))

    with pytest.raises(VersionExistsError, match=r"file name x-full-defended-1\.npz"):
        _register(x_full, other, version="1", variant="defended")

    stored = artifact_dir() / first.artifact_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first.artifact_sha256


@pytest.mark.parametrize("version", ["", "../evil", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_version_names_that_are_not_safe_file_name_parts_are_refused(digits, source, version):
    with pytest.raises(InvalidVersionError, match="A version is"):
        _register(digits, source, version=version)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"variant": "premium"}, "Unknown variant"),
        ({"dp_epsilon": 1.0}, "both"),
        ({"dp_delta": 1e-5}, "both"),
        ({"dp_epsilon": float("inf"), "dp_delta": 1e-5}, "finite"),
        ({"dp_epsilon": 1.0, "dp_delta": 1.0}, "dp_delta"),
    ],
)
def test_bad_version_fields_are_refused(digits, source, extra, message):
    with pytest.raises(InvalidVersionError, match=message):
        _register(digits, source, **extra)


def test_dp_figures_are_recorded_and_the_database_insists_on_the_pair(digits, source):
    version = _register(digits, source, variant="defended", dp_epsilon=7.4, dp_delta=1e-5)

    assert (version.dp_epsilon, version.dp_delta) == (7.4, 1e-5)
    with pytest.raises(IntegrityError, match="model_version_dp_epsilon_delta_pair"), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(dp_delta=None)


def test_an_artifact_already_in_the_artifact_directory_is_registered_in_place(digits):
    directory = artifact_dir()
    directory.mkdir(parents=True)
    in_place = directory / "digits-full-v1.npz"
    sha = write_artifact(in_place)

    version = _register(digits, in_place)

    assert version.artifact_sha256 == sha
    assert sorted(p.name for p in directory.iterdir()) == ["digits-full-v1.npz"]


def test_a_stored_path_outside_the_artifact_directory_is_never_resolved(digits, source):
    version = _register(digits, source)
    version.artifact_path = "../../etc/passwd"

    with pytest.raises(NotFoundError, match="outside"):
        version_artifact_file(version=version)


def test_model_create_and_its_checks():
    model = model_create(
        slug="letters", description="Letters", class_labels=["a", "b"], input_shape=[64], input_min=0, input_max=16
    )

    assert model_get(slug="letters") == model
    assert [m.slug for m in model_list()] == ["letters"]
    with pytest.raises(ModelExistsError):
        model_create(slug="letters", description="", class_labels=["a"], input_shape=[64], input_min=0, input_max=16)
    for bad, message in [
        ({"slug": "no spaces"}, "slug"),
        ({"class_labels": ["a", "a"]}, "distinct"),
        ({"class_labels": []}, "distinct"),
        ({"input_shape": [0]}, "shape"),
        ({"input_min": 16}, "input_min"),
        ({"input_shape": [32]}, "64 inputs"),
        ({"input_max": 255}, "64 inputs"),
    ]:
        arguments = {
            "slug": "other",
            "description": "",
            "class_labels": ["a", "b"],
            "input_shape": [64],
            "input_min": 0,
            "input_max": 16,
        } | bad
        with pytest.raises(InvalidVersionError, match=message):
            model_create(**arguments)
    with pytest.raises(NotFoundError):
        model_get(slug="absent")


def test_the_generation_starts_at_zero():
    assert registry_generation() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_switches_of_one_model_are_serialised_by_the_model_lock(source):
    """B's switch waits for A's to commit, then succeeds. (Without the lock B would not see A's newly active
    version, and activating its own would violate one_active_version_per_variant.)"""
    model = model_get_or_create_digits()
    versions = {name: _register(model, source, version=name, activate=name == "v1") for name in ("v1", "v2", "v3")}
    blocked, errors = second_waits_for_first(
        lambda: version_activate(version=versions["v2"]), lambda: version_activate(version=versions["v3"])
    )

    assert blocked, "the second switch did not wait for the first"
    assert errors == []
    assert _active(model, "full") == ["v3"]
