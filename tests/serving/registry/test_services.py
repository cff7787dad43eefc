"""Registry services: models created from their description, ONNX versions checked against it, one active version
per variant, atomic switches that tell servers."""

import hashlib

import numpy as np
import pytest
from django.db import IntegrityError, transaction

from core.errors import NotFoundError
from serving.ml.artifacts import ArtifactError, array_bytes
from serving.registry.errors import (
    ArtifactRejectedError,
    InvalidModelError,
    InvalidVersionError,
    ModelExistsError,
    VersionExistsError,
)
from serving.registry.models import ArtifactFormat, MLModel, ModelVersion
from serving.registry.selectors import (
    active_version,
    artifact_dir,
    model_get,
    model_heldout,
    model_list,
    model_reference_codes,
    registry_generation,
    version_artifact_file,
    version_classifier,
)
from serving.registry.services import (
    model_attach_data,
    version_activate,
    version_register,
)
from serving.registry.workflows import model_register_version
from tests.concurrency import second_waits_for_first
from tests.serving.helpers import (
    DIGIT_LABELS,
    DIGITS,
    DIGITS_SCHEMA,
    create_model,
    natural_rows,
    onnx_binding,
    random_onnx,
    tabular_schema,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def digits(model_artifact_dir) -> MLModel:
    return create_model()


def _register(model, onnx=None, *, version="v1", variant="full", activate=False, **extra) -> ModelVersion:
    extra.setdefault("output_name", "logits")  # Moat's exported graphs have two float outputs: logits, embedding
    return version_register(
        model=model,
        variant=variant,
        version=version,
        onnx_bytes=onnx if onnx is not None else random_onnx(),
        metrics={"note": "test"},
        provenance={"dataset": "test"},
        activate=activate,
        **extra,
    )


def _active(model, variant) -> list[str]:
    return list(
        ModelVersion.objects.filter(model=model, variant=variant, is_active=True).values_list("version", flat=True)
    )


def test_a_model_is_created_with_its_schema_and_its_reference_data_stored_as_canonical_codes(model_artifact_dir):
    rows = np.minimum(natural_rows(80).astype(np.float64) + 0.2, 16)  # nudges below half a grid step
    model = create_model(reference=rows, heldout=(natural_rows(60, seed=1), np.arange(60) % 10))

    assert model.input_schema == DIGITS.to_dict() and model.class_labels == DIGIT_LABELS
    assert model.reference_rows == 80 and model.heldout_rows == 60
    stored = model_reference_codes(model=model)
    assert stored.dtype == np.uint8 and np.array_equal(stored, natural_rows(80))
    assert hashlib.sha256((artifact_dir() / model.reference_path).read_bytes()).hexdigest() == model.reference_sha256
    inputs, labels = model_heldout(model=model)
    assert np.array_equal(inputs, natural_rows(60, seed=1)) and labels.tolist() == (np.arange(60) % 10).tolist()
    assert model_get(slug="digits") == model and [m.slug for m in model_list()] == ["digits"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slug": "no spaces"}, "not a valid slug"),
        ({"classes": ["a", "a"]}, "distinct"),
        ({"classes": ["only"]}, "at least two class labels"),
        ({"schema": {"kind": "audio"}}, "The input schema is not valid: The schema's 'kind' must be"),
        ({"schema": tabular_schema(3)}, "has shape (120, 64); the model's inputs need (n, 3)"),
        ({"reference": natural_rows(10)}, "holds 10 inputs; give at least 50"),
        ({"reference": np.zeros((60, 64))}, "all the same on the schema's grid"),
        ({"reference": np.full((60, 64), 17.0)}, "row 0: pixel (row 0, column 0) is 17, outside 0 to 16"),
        (
            {"heldout": (natural_rows(60), np.full(60, 12))},
            "The held-out set's labels must be class indices 0..9.",
        ),
    ],
)
def test_a_model_description_that_cannot_be_served_is_refused_with_a_sentence(model_artifact_dir, change, message):
    with pytest.raises(InvalidModelError) as refused:
        create_model(**change)

    assert message in refused.value.message
    assert MLModel.objects.count() == 0
    assert not model_artifact_dir.exists() or list(model_artifact_dir.iterdir()) == []


def test_a_second_model_with_a_taken_slug_is_refused(digits):
    with pytest.raises(ModelExistsError):
        create_model()


def test_register_and_activate(digits, django_capture_on_commit_callbacks):
    onnx = random_onnx()
    with django_capture_on_commit_callbacks(execute=True):
        version = _register(digits, onnx, activate=True)

    version.refresh_from_db()
    assert version.is_active and version.artifact_format == ArtifactFormat.ONNX
    assert version.artifact_path == "digits-full-v1.onnx"  # relative to the artifact directory
    assert (artifact_dir() / "digits-full-v1.onnx").read_bytes() == onnx
    assert version.artifact_sha256 == hashlib.sha256(onnx).hexdigest()
    # The binding found from the graph: its one input, flat; its one float output... and its embedding.
    assert (version.input_name, version.input_layout) == ("x", "flat")
    assert (version.output_name, version.output_kind) == ("logits", "logits")
    assert version.metrics == {"note": "test"} and version.provenance == {"dataset": "test"}
    assert active_version(model_slug="digits", variant="full") == version
    assert active_version(model_slug="digits", variant="defended") is None
    assert version_classifier(version=version).logits(DIGITS.values(natural_rows(3))).shape == (3, 10)
    assert registry_generation() == 1
    assert not list(artifact_dir().glob("*.part"))


def test_held_out_accuracy_and_a_defended_versions_agreement_with_the_full_one_are_measured(model_artifact_dir):
    rows = natural_rows(100)
    model = create_model(heldout=(rows, np.zeros(100, dtype=np.int64)))
    full = _register(model, random_onnx(hidden=(8,)), activate=True, **onnx_binding())
    defended = _register(model, random_onnx(hidden=(8,), seed=3), variant="defended", **onnx_binding())

    full_labels = version_classifier(version=full).logits(DIGITS.values(rows)).argmax(axis=1)
    version_labels = version_classifier(version=defended).logits(DIGITS.values(rows)).argmax(axis=1)
    assert full.metrics["holdout_accuracy"] == round(float(np.mean(full_labels == 0)), 6)
    assert full.metrics["holdout_rows"] == 100 and "agreement_with_full" not in full.metrics
    assert defended.metrics["agreement_with_full"] == round(float(np.mean(full_labels == version_labels)), 6)


def test_registering_without_activating_leaves_the_active_version_alone(digits):
    old = _register(digits, version="v1", activate=True)
    new = _register(digits, version="v2")

    assert not new.is_active
    assert _active(digits, "full") == ["v1"]
    assert active_version(model_slug="digits", variant="full") == old


def test_activating_another_version_switches_atomically_and_bumps_the_generation(
    digits, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        v1 = _register(digits, version="v1", activate=True)
        v2 = _register(digits, version="v2")
        defended = _register(digits, version="d1", variant="defended", activate=True)
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


def test_activating_the_active_version_is_harmless(digits):
    v1 = _register(digits, activate=True)

    version_activate(version=v1)

    assert _active(digits, "full") == ["v1"]


def test_the_database_allows_only_one_active_version_per_model_and_variant(digits):
    _register(digits, version="v1", activate=True)
    v2 = _register(digits, version="v2")

    with pytest.raises(IntegrityError, match="one_active_version_per_variant"), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(is_active=True)


def test_a_retired_numpy_version_is_never_active_again(digits):
    retired = _register(digits, version="old")
    ModelVersion.objects.filter(pk=retired.pk).update(artifact_format=ArtifactFormat.LEGACY_NPZ)
    retired.refresh_from_db()

    with pytest.raises(ArtifactRejectedError, match="retired numpy archive"):
        version_activate(version=retired)
    with pytest.raises(IntegrityError, match="model_version_retired_never_active"), transaction.atomic():
        ModelVersion.objects.filter(pk=retired.pk).update(is_active=True)


def test_a_failed_switch_changes_nothing(digits):
    _register(digits, version="v1", activate=True)
    v2 = _register(digits, version="v2")
    (artifact_dir() / v2.artifact_path).write_bytes(b"tampered")

    with pytest.raises(ArtifactRejectedError, match="cannot be activated"):
        version_activate(version=v2)

    assert _active(digits, "full") == ["v1"]
    assert registry_generation() == 0


def test_a_missing_artifact_or_reference_file_cannot_be_activated(digits):
    v1 = _register(digits, version="v1")
    (artifact_dir() / v1.artifact_path).unlink()
    with pytest.raises(ArtifactRejectedError, match="Cannot read"):
        version_activate(version=v1)

    v2 = _register(digits, version="v2")
    (artifact_dir() / digits.reference_path).write_bytes(b"tampered")
    with pytest.raises(ArtifactRejectedError, match="expected"):
        version_activate(version=v2)


@pytest.mark.parametrize(
    ("onnx", "binding", "message"),
    [
        (b"", {}, "The ONNX file is empty."),
        (b"garbage that is no protobuf", {}, "The file is not an ONNX model"),
        (random_onnx(inputs=63), {}, "The graph's input 'x' has shape [?, 63]; the schema's input needs [?, 64]"),
        (random_onnx(outputs=9), {}, "9 values per input, but the model has 10 classes"),
        (random_onnx(), {"input_name": "pixels"}, "The graph has no input 'pixels'; its inputs are x."),
        (random_onnx(), {"output_name": None}, "The graph has 2 float outputs (logits, embedding); name the one"),
        (random_onnx(), {"output_name": "embedding"}, "4 values per input, but the model has 10 classes"),
        (random_onnx(), {"output_name": "logits", "output_kind": "probabilities"}, "declared to hold probabilities"),
        (
            random_onnx(),
            {"output_name": "logits", "embedding_output": "nope"},
            "no output 'nope' to use as the embedding",
        ),
        (random_onnx(), {"output_name": "logits", "input_layout": "NCHW"}, "which is not the NCHW layout"),
    ],
)
def test_a_graph_that_does_not_fit_the_model_is_refused_with_a_sentence(digits, onnx, binding, message):
    with pytest.raises(ArtifactRejectedError) as refused:
        _register(digits, onnx, activate=True, **binding)

    assert message in refused.value.message
    assert ModelVersion.objects.count() == 0
    assert not list(artifact_dir().glob("*.onnx"))


def test_a_duplicate_version_is_refused_and_the_registered_artifact_is_not_overwritten(digits):
    first = _register(digits, version="v1", activate=True)

    with pytest.raises(VersionExistsError):
        _register(digits, random_onnx(seed=9), version="v1")

    assert ModelVersion.objects.count() == 1
    stored = artifact_dir() / first.artifact_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first.artifact_sha256


def test_colliding_file_names_of_different_versions_are_refused(model_artifact_dir):
    # "x" + "full" + "defended-1" and "x-full" + "defended" + "1" would both be x-full-defended-1.onnx.
    x, x_full = create_model(slug="x"), create_model(slug="x-full")
    first = _register(x, version="defended-1", variant="full")

    with pytest.raises(VersionExistsError, match=r"file name x-full-defended-1\.onnx"):
        _register(x_full, random_onnx(seed=9), version="1", variant="defended")

    stored = artifact_dir() / first.artifact_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == first.artifact_sha256


@pytest.mark.parametrize("version", ["", "../evil", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_version_names_that_are_not_safe_file_name_parts_are_refused(digits, version):
    with pytest.raises(InvalidVersionError, match="A version is"):
        _register(digits, version=version)


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
def test_bad_version_fields_are_refused(digits, extra, message):
    with pytest.raises(InvalidVersionError, match=message):
        _register(digits, **extra)


def test_dp_figures_are_recorded_and_the_database_insists_on_the_pair(digits):
    version = _register(digits, variant="defended", dp_epsilon=7.4, dp_delta=1e-5)

    assert (version.dp_epsilon, version.dp_delta) == (7.4, 1e-5)
    with pytest.raises(IntegrityError, match="model_version_dp_epsilon_delta_pair"), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(dp_delta=None)


def test_a_stored_path_outside_the_artifact_directory_is_never_resolved(digits):
    version = _register(digits)
    version.artifact_path = "../../etc/passwd"

    with pytest.raises(ArtifactError, match="outside"):
        version_artifact_file(version=version)


def test_the_operators_one_step_creates_the_model_then_checks_later_registrations_against_it(model_artifact_dir):
    def register(**changes):
        arguments = {
            "slug": "letters",
            "variant": "full",
            "version": "v1",
            "onnx_bytes": random_onnx(outputs=2),
            "activate": True,
            "class_labels": ["a", "b"],
            "input_schema": DIGITS_SCHEMA,
            "reference_data": array_bytes(natural_rows()),
            "reference_name": "natural.npy",
            "output_name": "logits",
        }
        return model_register_version(**(arguments | changes))

    with pytest.raises(InvalidModelError, match="creating it needs the classes"):
        register(class_labels=None)
    with pytest.raises(ArtifactRejectedError):
        register(onnx_bytes=b"junk")
    assert MLModel.objects.count() == 0  # all or nothing: a refused version leaves no model behind

    first = register()
    # Later versions may leave the description out, or repeat it; a different one is refused.
    second = register(version="v2", class_labels=None, input_schema=None, reference_data=None)
    third = register(version="v3")
    assert first.model_id == second.model_id == third.model_id
    for changes, message in [
        ({"class_labels": ["a", "c"]}, "exists with the classes a, b"),
        ({"input_schema": {**DIGITS_SCHEMA, "max": 15}}, "exists with another input schema"),
        ({"reference_data": array_bytes(natural_rows(seed=5))}, "exists with other reference data"),
    ]:
        with pytest.raises(InvalidModelError, match=message):
            register(version="v4", **changes)


def test_a_model_registered_before_model_data_is_given_its_reference_data_once(model_artifact_dir):
    legacy = MLModel.objects.create(
        slug="old", description="", class_labels=DIGIT_LABELS, input_schema=DIGITS_SCHEMA, reference_rows=0
    )

    with pytest.raises(ArtifactError, match="no reference data"):
        model_reference_codes(model=legacy)
    model_attach_data(model=legacy, reference_data=array_bytes(natural_rows()), reference_name="r.npy")
    legacy.refresh_from_db()
    assert legacy.reference_rows == 120 and model_reference_codes(model=legacy).shape == (120, 64)
    with pytest.raises(InvalidModelError, match="has reference data already"):
        model_attach_data(model=legacy, reference_data=array_bytes(natural_rows(seed=1)), reference_name="r.npy")


def test_unknown_models_are_not_found():
    with pytest.raises(NotFoundError):
        model_get(slug="absent")


def test_the_generation_starts_at_zero():
    assert registry_generation() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_switches_of_one_model_are_serialised_by_the_model_lock(model_artifact_dir):
    """B's switch waits for A's to commit, then succeeds. (Without the lock B would not see A's newly active
    version, and activating its own would violate one_active_version_per_variant.)"""
    model = create_model()
    versions = {name: _register(model, version=name, activate=name == "v1") for name in ("v1", "v2", "v3")}
    blocked, errors = second_waits_for_first(
        lambda: version_activate(version=versions["v2"]), lambda: version_activate(version=versions["v3"])
    )

    assert blocked, "the second switch did not wait for the first"
    assert errors == []
    assert _active(model, "full") == ["v3"]
