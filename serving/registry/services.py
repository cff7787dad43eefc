"""Writes of the model registry: create models from their description, register verified ONNX versions, switch
the active one.

A model is created from its input schema, class labels and reference data (and optionally a labelled held-out
set); its data files are checked against the schema and stored as canonical codes. A version's graph is checked
against the model (`serving.registry.graphs`: input, layout, output, and the reference data run through it) before
it is recorded, and its sha256 re-verified before it is activated. After an activation commits, the generation
counter in Redis is bumped so that serving processes reload within seconds, with no restart.
"""

import hashlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from serving.inference import GraphBinding, OnnxClassifier
from serving.input_schema import InputSchema, SchemaError
from serving.ml.artifacts import ArtifactError, array_bytes, arrays_bytes, read_verified, write_file_atomically
from serving.registry.datafiles import MIN_REFERENCE_ROWS, DataFileError, read_inputs, read_labelled
from serving.registry.errors import (
    ArtifactRejectedError,
    InvalidModelError,
    InvalidVersionError,
    ModelExistsError,
    VersionExistsError,
)
from serving.registry.models import ArtifactFormat, MLModel, ModelVersion
from serving.registry.selectors import (
    GENERATION_KEY,
    active_version,
    artifact_dir,
    model_heldout,
    model_reference_codes,
    model_schema,
    version_artifact_file,
    version_classifier,
)
from tiers.models import ModelVariant

logger = logging.getLogger(__name__)

# Version names become part of a file name: no separators, no leading dot.
_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_CLASSES = 1000
MAX_ONNX_BYTES = 512 * 1024 * 1024


def _bump_generation() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # no counter yet (first switch, or Redis lost it): start one; add() loses a race safely
        if not cache.add(GENERATION_KEY, 1, timeout=None):
            cache.incr(GENERATION_KEY)


def _after_commit_bump_generation() -> None:
    # robust: the switch is committed whatever happens here; if Redis is down the serving processes still pick it
    # up at their periodic full reload, so log the failure rather than report a committed switch as failed.
    transaction.on_commit(_bump_generation, robust=True)


def _store_file(name: str, data: bytes) -> str:
    """Write `data` into the artifact directory under `name` (atomically) unless identical bytes are there."""
    directory = artifact_dir()
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / name
    if not (destination.exists() and destination.read_bytes() == data):
        write_file_atomically(destination, data)
    return name


def _class_labels(class_labels: list[str]) -> list[str]:
    labels = [str(label).strip() for label in class_labels]
    if len(labels) < 2 or "" in labels or len(set(labels)) != len(labels):
        raise InvalidModelError("A classifier needs at least two class labels, non-empty and distinct.")
    if len(labels) > MAX_CLASSES or any(len(label) > 64 for label in labels):
        raise InvalidModelError(f"At most {MAX_CLASSES} class labels of at most 64 characters each.")
    return labels


@transaction.atomic
def model_create(
    *,
    slug: str,
    description: str,
    class_labels: list[str],
    input_schema: object,
    reference_data: bytes,
    reference_name: str,
    heldout_data: bytes | None = None,
    heldout_name: str = "",
) -> MLModel:
    """Create a model from its description. The schema must be valid (`serving.input_schema`); the reference data
    (`.npy` or `.csv`, at least MIN_REFERENCE_ROWS natural inputs within the schema's bounds) and the optional
    held-out set (`.npz` or `.csv`, labelled with the class labels) are read against it and stored, as canonical
    codes, in the artifact directory. Raises InvalidModelError (with a sentence naming the problem) or
    ModelExistsError."""
    try:
        validate_slug(slug)
    except ValidationError as exc:
        raise InvalidModelError(f"'{slug}' is not a valid slug (letters, digits, '-' and '_').") from exc
    if len(slug) > 64:
        raise InvalidModelError("A model's slug has at most 64 characters.")
    labels = _class_labels(class_labels)
    try:
        schema = InputSchema.from_dict(input_schema)
    except SchemaError as exc:
        raise InvalidModelError(f"The input schema is not valid: {exc}") from exc
    data = _read_model_data(
        schema,
        labels,
        reference_data=reference_data,
        reference_name=reference_name,
        heldout_data=heldout_data,
        heldout_name=heldout_name,
    )
    try:
        with transaction.atomic():
            model = MLModel.objects.create(
                slug=slug,
                description=description[:255],
                class_labels=labels,
                input_schema=schema.to_dict(),
                **data.fields(slug),
            )
    except IntegrityError as exc:
        raise ModelExistsError(f"A model '{slug}' already exists.") from exc
    # Only now, with the row (and so the names) ours, are the files written.
    data.store(model)
    return model


@dataclass(frozen=True)
class _ModelData:
    reference: bytes
    reference_rows: int
    heldout: bytes | None
    heldout_rows: int

    def fields(self, slug: str) -> dict[str, Any]:
        reference_sha = hashlib.sha256(self.reference).hexdigest()
        heldout_sha = hashlib.sha256(self.heldout).hexdigest() if self.heldout is not None else ""
        return {
            "reference_path": f"{slug}-reference-{reference_sha[:16]}.npy",
            "reference_sha256": reference_sha,
            "reference_rows": self.reference_rows,
            "heldout_path": f"{slug}-heldout-{heldout_sha[:16]}.npz" if self.heldout is not None else "",
            "heldout_sha256": heldout_sha,
            "heldout_rows": self.heldout_rows,
        }

    def store(self, model: MLModel) -> None:
        _store_file(model.reference_path, self.reference)
        if self.heldout is not None:
            _store_file(model.heldout_path, self.heldout)


def _model_data(
    schema: InputSchema, reference: np.ndarray, heldout: tuple[np.ndarray, np.ndarray] | None
) -> _ModelData:
    """The model's data files as they are stored (canonical codes), once the reference data are found usable."""
    reference_codes = schema.codes(reference)
    if reference_codes.shape[0] < MIN_REFERENCE_ROWS:
        raise InvalidModelError(
            f"The reference data holds {reference_codes.shape[0]} inputs; give at least {MIN_REFERENCE_ROWS} natural "
            "inputs (the watermark, the abuse profile and distillation are fitted on them)."
        )
    if np.unique(reference_codes, axis=0).shape[0] < 2:
        raise InvalidModelError("The reference data's inputs are all the same on the schema's grid.")
    return _ModelData(
        reference=array_bytes(reference_codes),
        reference_rows=int(reference_codes.shape[0]),
        heldout=(
            arrays_bytes({"inputs": schema.codes(heldout[0]), "labels": heldout[1]}) if heldout is not None else None
        ),
        heldout_rows=int(heldout[0].shape[0]) if heldout is not None else 0,
    )


def _read_model_data(
    schema: InputSchema,
    labels: list[str],
    *,
    reference_data: bytes,
    reference_name: str,
    heldout_data: bytes | None,
    heldout_name: str,
) -> _ModelData:
    try:
        reference = read_inputs(reference_data, name=reference_name, schema=schema)
        heldout = (
            read_labelled(heldout_data, name=heldout_name, schema=schema, class_labels=labels)
            if heldout_data is not None
            else None
        )
    except DataFileError as exc:
        raise InvalidModelError(str(exc)) from exc
    return _model_data(schema, reference, heldout)


@transaction.atomic
def model_attach_data(
    *,
    model: MLModel,
    reference_data: bytes,
    reference_name: str,
    heldout_data: bytes | None = None,
    heldout_name: str = "",
) -> MLModel:
    """Give reference data (and a held-out set) to a model registered before models had them; a model that has
    reference data keeps it (InvalidModelError): its regions and versions were fitted and checked on it."""
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    if model.reference_path:
        raise InvalidModelError(f"Model '{model.slug}' has reference data already; it cannot change.")
    data = _read_model_data(
        model_schema(model=model),
        list(model.class_labels),
        reference_data=reference_data,
        reference_name=reference_name,
        heldout_data=heldout_data,
        heldout_name=heldout_name,
    )
    for name, value in data.fields(model.slug).items():
        setattr(model, name, value)
    model.save()
    data.store(model)
    return model


def _check_version_fields(
    *, variant: str, version: str, metrics: Any, provenance: Any, dp_epsilon: float | None, dp_delta: float | None
) -> None:
    if variant not in ModelVariant.values:
        raise InvalidVersionError(f"Unknown variant '{variant}'; expected one of {', '.join(ModelVariant.values)}.")
    if not _VERSION_PATTERN.fullmatch(version):
        raise InvalidVersionError(
            "A version is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    if not isinstance(metrics, dict) or not isinstance(provenance, dict):
        raise InvalidVersionError("Metrics and provenance must be JSON objects.")
    if (dp_epsilon is None) != (dp_delta is None):
        raise InvalidVersionError("Give both dp_epsilon and dp_delta, or neither.")
    if (
        dp_epsilon is not None
        and dp_delta is not None
        and not (math.isfinite(dp_epsilon) and dp_epsilon >= 0 and 0 < dp_delta < 1)
    ):
        raise InvalidVersionError("dp_epsilon must be finite and >= 0, and 0 < dp_delta < 1.")


def _measured_metrics(
    model: MLModel, variant: str, schema: InputSchema, reference: np.ndarray, classifier: OnnxClassifier
) -> dict[str, Any]:
    """Measured on the graph being registered: held-out accuracy (when the model has a held-out set) and, for a
    defended version, its agreement with the active full version (on the held-out inputs, else the reference
    data): how much of the full model's behaviour its answers give away."""
    measured: dict[str, Any] = {}
    heldout = model_heldout(model=model)
    inputs = schema.values(heldout[0]) if heldout is not None else reference
    top1 = classifier.logits(inputs).argmax(axis=1)
    if heldout is not None:
        measured["holdout_accuracy"] = round(float(np.mean(top1 == heldout[1])), 6)
        measured["holdout_rows"] = int(heldout[1].size)
    full = active_version(model_slug=model.slug, variant=ModelVariant.FULL)
    if variant == ModelVariant.DEFENDED and full is not None:
        try:
            full_top1 = version_classifier(version=full).logits(inputs).argmax(axis=1)
        except ArtifactError:
            logger.warning("the active full version of %s cannot be read; agreement not measured", model.slug)
        else:
            measured["agreement_with_full"] = round(float(np.mean(top1 == full_top1)), 6)
            measured["agreement_rows"] = int(top1.size)
    return measured


@transaction.atomic
def version_register(
    *,
    model: MLModel,
    variant: str,
    version: str,
    onnx_bytes: bytes,
    input_name: str | None = None,
    input_layout: str | None = None,
    output_name: str | None = None,
    output_kind: str | None = None,
    embedding_output: str | None = None,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    dp_epsilon: float | None = None,
    dp_delta: float | None = None,
    input_profile: dict[str, Any] | None = None,
    activate: bool,
) -> ModelVersion:
    """Record a new version of `model` from an ONNX graph, and activate it if asked.

    The graph is checked against the model (`serving.registry.graphs`): its input (the named one, or its only one)
    and layout against the schema, its output (the named one, or its only float output) against the class labels,
    and the reference data run through it, which must give one finite score per class for every input; the output
    kind is found (logits or probabilities) or checked when declared. Held-out accuracy is measured when the model
    has a held-out set. The bytes are written atomically to `artifact_dir()/<slug>-<variant>-<version>.onnx`; the
    row stores that relative path and their sha256. Raises ArtifactRejectedError, InvalidVersionError or
    VersionExistsError, leaving no row behind."""
    metrics = dict(metrics or {})
    provenance = dict(provenance or {})
    _check_version_fields(
        variant=variant,
        version=version,
        metrics=metrics,
        provenance=provenance,
        dp_epsilon=dp_epsilon,
        dp_delta=dp_delta,
    )
    if len(onnx_bytes) > MAX_ONNX_BYTES:
        raise ArtifactRejectedError(f"The ONNX file is larger than {MAX_ONNX_BYTES // (1024 * 1024)} MiB.")
    # The onnx package (about 16 MB) is needed to check a graph, never to serve one: web workers stay without it.
    from serving.registry.graphs import GraphRejected, check_answers, inspect_graph

    schema = model_schema(model=model)
    try:
        reference = schema.values(model_reference_codes(model=model))
    except ArtifactError as exc:
        raise ArtifactRejectedError(f"The model's reference data cannot be read: {exc}") from exc
    try:
        inspected = inspect_graph(
            onnx_bytes,
            schema,
            input_name=input_name or None,
            input_layout=input_layout or None,
            output_name=output_name or None,
            embedding_output=embedding_output or None,
        )
        binding = check_answers(
            inspected, schema, reference, n_classes=len(model.class_labels), output_kind=output_kind or None
        )
    except GraphRejected as exc:
        raise ArtifactRejectedError(str(exc)) from exc
    classifier = OnnxClassifier(inspected.session, binding, schema)
    metrics.update(_measured_metrics(model, variant, schema, reference, classifier))
    sha256 = hashlib.sha256(onnx_bytes).hexdigest()

    # Serialises registrations and switches of this model's versions.
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    file_name = f"{model.slug}-{variant}-{version}.onnx"
    try:
        with transaction.atomic():
            row = ModelVersion.objects.create(
                model=model,
                variant=variant,
                version=version,
                artifact_path=file_name,
                artifact_sha256=sha256,
                artifact_format=ArtifactFormat.ONNX,
                input_name=binding.input_name,
                input_layout=binding.input_layout,
                output_name=binding.output_name,
                output_kind=binding.output_kind,
                embedding_output=binding.embedding_output,
                metrics=metrics,
                provenance=provenance,
                dp_epsilon=dp_epsilon,
                dp_delta=dp_delta,
                input_profile=input_profile or {},
                is_active=False,
            )
    except IntegrityError as exc:
        raise VersionExistsError(
            f"Version '{version}' of '{model.slug}' ({variant}) exists, or its file name {file_name} is taken."
        ) from exc
    # Only now, with the row (and so the name) ours, is the file written: a failed insert never clobbers the
    # artifact of an existing version.
    _store_file(file_name, onnx_bytes)
    if activate:
        version_activate(version=row)
    return row


def version_register_file(*, onnx_file: Path, **kwargs: Any) -> ModelVersion:
    """`version_register` from a file on disk. Raises ArtifactRejectedError when it cannot be read."""
    try:
        data = Path(onnx_file).read_bytes()
    except OSError as exc:
        raise ArtifactRejectedError(f"Cannot read {onnx_file}: {exc.strerror or exc}.") from exc
    return version_register(onnx_bytes=data, **kwargs)


@transaction.atomic
def version_activate(*, version: ModelVersion) -> None:
    """Make `version` the active one of its model and variant, in one transaction: the current active version is
    deactivated first, then this one activated (the partial unique constraint allows only one active version per
    model and variant at any moment). Concurrent switches of one model are serialised by a lock on the model row.
    The artifact is re-verified first, so a version whose file is missing or altered never replaces a working one
    (ArtifactRejectedError). Activating the active version is allowed and just tells servers to reload.
    After commit, the registry generation is bumped."""
    model = MLModel.objects.select_for_update().get(pk=version.model_id)
    current = ModelVersion.objects.get(pk=version.pk)
    if current.artifact_format != ArtifactFormat.ONNX:
        raise ArtifactRejectedError(f"{current} is a retired numpy archive: register an ONNX version instead.")
    try:
        read_verified(version_artifact_file(version=current), expected_sha256=current.artifact_sha256)
        model_reference_codes(model=model)
    except ArtifactError as exc:
        raise ArtifactRejectedError(f"{current} cannot be activated: {exc}") from exc
    ModelVersion.objects.filter(model=model, variant=current.variant, is_active=True).exclude(pk=current.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=current.pk).update(is_active=True)
    version.is_active = True
    logger.info("activated %s", current)
    _after_commit_bump_generation()


def binding_kwargs(binding: GraphBinding) -> dict[str, str]:
    """A known binding as `version_register`'s keyword arguments (Moat's own exported graphs)."""
    return {
        "input_name": binding.input_name,
        "input_layout": binding.input_layout,
        "output_name": binding.output_name,
        "output_kind": binding.output_kind,
        "embedding_output": binding.embedding_output,
    }
