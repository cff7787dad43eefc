"""Reads of the model registry, and where its artifacts live."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from core.errors import NotFoundError
from serving.inference import GraphBinding, OnnxClassifier
from serving.input_schema import InputSchema
from serving.ml.artifacts import ArtifactError, load_array, load_arrays, read_verified
from serving.registry.models import MLModel, ModelVersion
from serving.watermark import Calibration, RegionWatermark

# Bumped after every activation commits; serving processes poll it to know when to reload (see services.py).
GENERATION_KEY = "registry:generation"


def artifact_dir() -> Path:
    """The directory that `ModelVersion.artifact_path` is relative to (settings.MODEL_ARTIFACT_DIR)."""
    return Path(getattr(settings, "MODEL_ARTIFACT_DIR", Path(settings.BASE_DIR) / ".moat" / "models"))


def _inside_artifact_dir(relative: str, what: object) -> Path:
    # The columns are written only by the services, but a hand-edited row must not read arbitrary files.
    directory = artifact_dir().resolve()
    path = (directory / relative).resolve()
    if not relative or not path.is_relative_to(directory):
        raise ArtifactError(f"The file of {what} is outside the artifact directory.")
    return path


def version_artifact_file(*, version: ModelVersion) -> Path:
    """The absolute path of a version's artifact. Raises ArtifactError for a stored path that would leave the
    artifact directory."""
    return _inside_artifact_dir(version.artifact_path, version)


def model_schema(*, model: MLModel) -> InputSchema:
    """The model's input schema (validated when the model was created)."""
    return InputSchema.from_dict(model.input_schema)


def model_reference_codes(*, model: MLModel) -> np.ndarray:
    """The model's reference inputs as canonical codes (m, d), verified by sha256. Raises ArtifactError."""
    if not model.reference_path:
        raise ArtifactError(f"Model {model.slug} has no reference data: register it with its reference data.")
    data = read_verified(_inside_artifact_dir(model.reference_path, model), expected_sha256=model.reference_sha256)
    return model_schema(model=model).check_codes(load_array(data))


def model_watermark(
    *, model: MLModel, reference: np.ndarray | None = None, secret: bytes | None = None
) -> RegionWatermark:
    """The model's watermark regions, fitted on its reference data (`reference`, when the caller has read it
    already) under `secret` (default: this server's WATERMARK_SECRET). Raises ArtifactError when the reference data
    cannot be read."""
    return RegionWatermark.fit(
        model_schema(model=model),
        model_reference_codes(model=model) if reference is None else reference,
        secret=settings.WATERMARK_SECRET.encode() if secret is None else secret,
        n_classes=len(model.class_labels),
    )


def model_heldout(*, model: MLModel) -> tuple[np.ndarray, np.ndarray] | None:
    """The model's labelled held-out set (canonical codes (n, d), class indices (n,)), verified by sha256; None
    when it has none. Raises ArtifactError."""
    if not model.heldout_path:
        return None
    data = read_verified(_inside_artifact_dir(model.heldout_path, model), expected_sha256=model.heldout_sha256)
    arrays = load_arrays(data)
    return model_schema(model=model).check_codes(arrays["inputs"]), arrays["labels"].astype(np.int64)


def version_binding(*, version: ModelVersion) -> GraphBinding:
    return GraphBinding(
        input_name=version.input_name,
        input_layout=version.input_layout,
        output_name=version.output_name,
        output_kind=version.output_kind,
        embedding_output=version.embedding_output,
    )


def version_classifier(*, version: ModelVersion) -> OnnxClassifier:
    """A session on the version's verified graph. Raises ArtifactError when the file is missing or altered."""
    data = read_verified(version_artifact_file(version=version), expected_sha256=version.artifact_sha256)
    return OnnxClassifier.from_bytes(data, version_binding(version=version), model_schema(model=version.model))


def registry_generation() -> int:
    """The registry's generation counter: it changes whenever an active version changes. 0 before the first
    switch. Redis errors propagate: the caller decides whether to keep serving what it has."""
    return int(cache.get(GENERATION_KEY, 0))


def model_list() -> QuerySet[MLModel]:
    """Every model, by slug."""
    return MLModel.objects.order_by("slug")


def model_get(*, slug: str) -> MLModel:
    """The model with this slug; NotFoundError when there is none."""
    model = MLModel.objects.filter(slug=slug).first()
    if model is None:
        raise NotFoundError(f"No model '{slug}'.")
    return model


def active_version(*, model_slug: str, variant: str) -> ModelVersion | None:
    """The active version of a model in a variant (with its model loaded), or None."""
    return (
        ModelVersion.objects.select_related("model")
        .filter(model__slug=model_slug, variant=variant, is_active=True)
        .first()
    )


def version_list(*, model_slug: str) -> QuerySet[ModelVersion]:
    """A model's versions, newest first within each variant."""
    return ModelVersion.objects.select_related("model").filter(model__slug=model_slug)


def version_get(*, model_slug: str, variant: str, version: str) -> ModelVersion:
    """One version of a model; NotFoundError when there is none."""
    found = version_list(model_slug=model_slug).filter(variant=variant, version=version).first()
    if found is None:
        raise NotFoundError(f"No version '{version}' of model '{model_slug}' in variant '{variant}'.")
    return found


@dataclass(frozen=True)
class TierWatermark:
    """What one tier's watermark costs and marks for a model (`serving.watermark.Calibration`), and a warning when
    the bound on honest users' cost leaves less than half the tier's fraction of regions marked."""

    tier_code: str
    tier_name: str
    calibration: Calibration
    warning: str


def model_watermark_calibrations(*, model: MLModel) -> list[TierWatermark]:
    """Per tier that watermarks its answers: the share of the model's reference inputs in marked regions (at most
    the tier's fraction, by construction), the share of its held-out inputs there (an independent check) and the
    share of regions marked, under this server's WATERMARK_SECRET. Raises ArtifactError when the model's data files
    cannot be read."""
    from serving.defenses import DefenseConfig
    from tiers.models import Tier  # the tiers app reads the registry's variants; imported here to keep it one-way

    watermark = model_watermark(model=model)
    heldout = model_heldout(model=model)
    found = []
    for tier in Tier.objects.order_by("sort_order", "code"):
        fraction = DefenseConfig.from_dict(tier.defenses).watermark_fraction if tier.defenses else 0.0
        if fraction <= 0.0:
            continue
        calibration = watermark.calibration(fraction, heldout=heldout[0] if heldout is not None else None)
        warning = ""
        if calibration.threshold < fraction / 2:
            warning = (
                f"To keep honest users' cost at {fraction:.1%}, only {calibration.threshold:.2%} of regions are "
                "marked: the reference data crowd into few regions, so proving a copy takes more of its answers."
            )
        found.append(TierWatermark(tier_code=tier.code, tier_name=tier.name, calibration=calibration, warning=warning))
    return found
