"""Writes of the model registry: create models, register verified versions, switch the active one.

Every version's artifact is verified (sha256, format, shapes, class labels) before it is recorded, and again
before it is activated. After an activation commits, the generation counter in Redis is bumped so that serving
processes reload within seconds, with no restart.
"""

import hashlib
import logging
import math
import re
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from serving.ml.artifacts import ArtifactError, read_artifact, write_file_atomically
from serving.ml.demo import CLASS_LABELS
from serving.registry.errors import (
    ArtifactRejectedError,
    InvalidVersionError,
    ModelExistsError,
    VersionExistsError,
)
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import GENERATION_KEY, artifact_dir, version_artifact_file
from tiers.models import ModelVariant

logger = logging.getLogger(__name__)

DIGITS_SLUG = "digits"
# Version names become part of a file name: no separators, no leading dot.
_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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


@transaction.atomic
def model_create(
    *,
    slug: str,
    description: str,
    class_labels: list[str],
    input_shape: list[int],
    input_min: float,
    input_max: float,
) -> MLModel:
    """Create a model. Raises ModelExistsError for a taken slug and InvalidVersionError for a bad definition
    (bad slug, empty or repeated class labels, non-positive shape, min >= max)."""
    try:
        validate_slug(slug)
    except ValidationError as exc:
        raise InvalidVersionError(f"'{slug}' is not a valid slug.") from exc
    labels = [str(label).strip() for label in class_labels]
    if not labels or "" in labels or len(set(labels)) != len(labels):
        raise InvalidVersionError("Class labels must be non-empty and distinct.")
    if not input_shape or any(int(size) < 1 for size in input_shape):
        raise InvalidVersionError("The input shape must be a non-empty list of positive sizes.")
    if not (math.isfinite(input_min) and math.isfinite(input_max) and input_min < input_max):
        raise InvalidVersionError("input_min must be smaller than input_max.")
    # The serving path (validation, canonical inputs, output defenses, watermarks, the query log's compact rows)
    # is built for 8x8 images with intensities 0..16; a model it could not serve is refused here, not at the API.
    if list(input_shape) != [64] or (input_min, input_max) != (0, 16):
        raise InvalidVersionError("Moat serves models over 64 inputs (8x8 images) with values from 0 to 16.")
    try:
        with transaction.atomic():
            return MLModel.objects.create(
                slug=slug,
                description=description,
                class_labels=labels,
                input_shape=[int(size) for size in input_shape],
                input_min=float(input_min),
                input_max=float(input_max),
            )
    except IntegrityError as exc:
        raise ModelExistsError(f"A model '{slug}' already exists.") from exc


@transaction.atomic
def model_get_or_create_digits() -> MLModel:
    """The `digits` model (8x8 images as 64 intensities 0..16, classes "0".."9"), created on first use."""
    model, _created = MLModel.objects.get_or_create(
        slug=DIGITS_SLUG,
        defaults={
            "description": "Handwritten digit classifier: 8x8 images as 64 pixel intensities 0..16.",
            "class_labels": list(CLASS_LABELS),
            "input_shape": [64],
            "input_min": 0.0,
            "input_max": 16.0,
        },
    )
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


@transaction.atomic
def version_register(
    *,
    model: MLModel,
    variant: str,
    version: str,
    artifact_file: Path,
    metrics: dict[str, Any],
    provenance: dict[str, Any],
    dp_epsilon: float | None = None,
    dp_delta: float | None = None,
    input_profile: dict[str, Any] | None = None,
    activate: bool,
) -> ModelVersion:
    """Record a new version of `model` from the artifact at `artifact_file`, and activate it if asked.

    The artifact must load (format, shapes) and fit the model: as many inputs as `model.input_shape` holds and
    exactly `model.class_labels` as outputs. Its bytes are copied atomically to
    `artifact_dir()/<slug>-<variant>-<version>.npz` (unless that is where it already is); the row stores that
    relative path and the sha256 of the bytes. Raises ArtifactRejectedError, InvalidVersionError or
    VersionExistsError, leaving no row behind (a copied file stays only if the transaction fails after the copy,
    under a name no row uses)."""
    _check_version_fields(
        variant=variant,
        version=version,
        metrics=metrics,
        provenance=provenance,
        dp_epsilon=dp_epsilon,
        dp_delta=dp_delta,
    )
    source = Path(artifact_file)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ArtifactRejectedError(f"Cannot read {source}: {exc.strerror or exc}.") from exc
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        # Checked against the sha of the bytes read above, so what is verified is exactly what gets copied.
        artifact = read_artifact(source, expected_sha256=sha256, expected_inputs=math.prod(model.input_shape))
    except ArtifactError as exc:
        raise ArtifactRejectedError(str(exc)) from exc
    if list(artifact.class_labels) != list(model.class_labels):
        raise ArtifactRejectedError(
            f"The artifact's class labels {list(artifact.class_labels)} differ from the model's "
            f"{list(model.class_labels)}."
        )

    # Serialises registrations and switches of this model's versions.
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    file_name = f"{model.slug}-{variant}-{version}.npz"
    try:
        with transaction.atomic():
            row = ModelVersion.objects.create(
                model=model,
                variant=variant,
                version=version,
                artifact_path=file_name,
                artifact_sha256=sha256,
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
    directory = artifact_dir()
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / file_name
    if not (destination.exists() and destination.samefile(source)):
        write_file_atomically(destination, data)
    if activate:
        version_activate(version=row)
    return row


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
    try:
        read_artifact(
            version_artifact_file(version=current),
            expected_sha256=current.artifact_sha256,
            expected_inputs=math.prod(model.input_shape),
        )
    except ArtifactError as exc:
        raise ArtifactRejectedError(f"{current} cannot be activated: {exc}") from exc
    ModelVersion.objects.filter(model=model, variant=current.variant, is_active=True).exclude(pk=current.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=current.pk).update(is_active=True)
    version.is_active = True
    logger.info("activated %s", current)
    _after_commit_bump_generation()
