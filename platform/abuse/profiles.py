"""Every served model's reference profile of natural inputs, fitted from its registered data, with no code per model.

A model an operator registers brings its input schema, its reference data (natural inputs) and optionally a
labelled held-out set; that is all detection needs. The profile (`abuse.extraction.InputProfile`) is fitted on the
reference codes in the space the schema chooses, the share of natural inputs beyond its distance threshold is
measured on the held-out inputs (else assumed 1%), and the natural share of low-confidence answers is measured as
the platform really serves natural inputs: each tier's active variant, with the tier's output defenses, this
server's noise and watermark secrets. The highest share of any tier is kept: a higher baseline flags fewer honest
users on every tier.

The risk job calls `model_profiles_ensure` before each run: a version activated since the last run (or holding an
older profile format) gets its model's profile then, once, and keeps it in `ModelVersion.input_profile`.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.db import transaction

from abuse.extraction import LOW_CONFIDENCE, InputProfile
from abuse.extraction.constants import PROFILE_FORMAT
from serving.defenses import DefenseConfig, apply_defenses
from serving.ml.artifacts import ArtifactError
from serving.registry.models import ArtifactFormat, MLModel, ModelVariant, ModelVersion
from serving.registry.selectors import (
    model_heldout,
    model_reference_codes,
    model_schema,
    model_watermark,
    version_classifier,
)
from tiers.models import Tier

logger = logging.getLogger(__name__)


def natural_served_confidences(*, model: MLModel, natural: np.ndarray) -> np.ndarray:
    """The confidences the platform serves for canonical `natural` inputs under the tier whose answers are least
    confident (the most natural answers below `LOW_CONFIDENCE`): each tier is answered by its active variant (or
    the model's other one, as the API falls back) through its own defenses. Raises ArtifactError when the model
    has no active version."""
    schema = model_schema(model=model)
    versions = {
        version.variant: version
        for version in ModelVersion.objects.filter(model=model, is_active=True, artifact_format=ArtifactFormat.ONNX)
    }
    if not versions:
        raise ArtifactError(f"Model {model.slug} has no active version to answer its natural inputs.")
    fallback = ModelVariant.DEFENDED if ModelVariant.DEFENDED in versions else next(iter(versions))
    served_as = [
        (tier.model_variant if tier.model_variant in versions else fallback, tier.defenses)
        for tier in Tier.objects.order_by("sort_order", "pk")
    ] or [(fallback, {})]
    watermark = model_watermark(model=model)
    logits: dict[str, np.ndarray] = {}
    worst, worst_share = np.zeros(0), -1.0
    for variant, defenses in served_as:
        if variant not in logits:
            logits[variant] = version_classifier(version=versions[variant]).logits(schema.values(natural))
        served = apply_defenses(
            logits[variant],
            natural,
            config=DefenseConfig.from_dict(defenses) if defenses else DefenseConfig.none(),
            class_labels=model.class_labels,
            noise_secret=settings.OUTPUT_NOISE_SECRET.encode(),
            watermark=watermark,
        )
        confidences = np.array([float(item.confidence) for item in served])
        share = float(np.mean(confidences < LOW_CONFIDENCE)) if confidences.size else 0.0
        if share > worst_share:
            worst, worst_share = confidences, share
    return worst


def model_profile_fit(*, model: MLModel) -> InputProfile:
    """The model's reference profile from its registered data (see the module doc). Raises ArtifactError when
    the data cannot be read or the model has no active version, ValueError when the reference data are too few."""
    schema = model_schema(model=model)
    reference = model_reference_codes(model=model)
    heldout = model_heldout(model=model)
    natural = heldout[0] if heldout is not None else reference
    return InputProfile.for_schema(
        schema,
        reference,
        heldout=None if heldout is None else heldout[0],
        heldout_confidences=natural_served_confidences(model=model, natural=natural),
    )


def _needs_profile(version: ModelVersion) -> bool:
    return (version.input_profile or {}).get("format") != PROFILE_FORMAT


def model_profiles_ensure() -> list[str]:
    """Fit and store the profile of every model with an active version that has none of the current format;
    returns their slugs. A model whose data cannot be fitted is logged and left without one (the scorer then
    skips the signals that need it, and says so)."""
    stale = ModelVersion.objects.filter(is_active=True, artifact_format=ArtifactFormat.ONNX).select_related("model")
    models = {version.model_id: version.model for version in stale if _needs_profile(version)}
    fitted = []
    for model in models.values():
        try:
            profile = model_profile_fit(model=model).to_dict()
        except (ArtifactError, ValueError, np.linalg.LinAlgError):
            logger.exception("could not fit the reference profile of model %s", model.slug)
            continue
        with transaction.atomic():
            # Every active version of the model shares it: the natural inputs are the model's.
            ModelVersion.objects.filter(model=model, is_active=True).update(input_profile=profile)
        fitted.append(model.slug)
    return fitted
