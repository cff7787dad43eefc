"""Moat's bundled demo models, registered through the very services an operator uses: `digits` (8x8 images, numpy
MLPs exported to ONNX) and `breast-cancer` (30 tabular features, a scikit-learn pipeline converted with skl2onnx,
its defended variant distilled by `model_distill_defended`). `make run` registers both (`train_demo_model
--if-missing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction

from serving.input_schema import InputSchema
from serving.ml import breast_cancer, digits
from serving.ml.artifacts import array_bytes, arrays_bytes
from serving.ml.digits_models import DemoModels, DPSettings, TrainedVariant, train_demo_models
from serving.ml.onnx_export import binding_for, mlp_to_onnx
from serving.registry.models import MLModel
from serving.registry.selectors import active_version
from serving.registry.services import (
    binding_kwargs,
    model_attach_data,
    model_create,
    version_register,
)
from serving.registry.workflows import model_distill_defended
from tiers.models import ModelVariant

DEMO_SLUGS = (digits.SLUG, breast_cancer.SLUG)


def missing_variants(slug: str) -> list[str]:
    """The variants of a demo model with no active version (or every variant, when it lacks its data)."""
    model = MLModel.objects.filter(slug=slug).first()
    if model is None or not model.reference_path:
        return list(ModelVariant.values)
    return [v for v in ModelVariant.values if active_version(model_slug=slug, variant=v) is None]


def _demo_model(
    slug: str, *, description: str, class_labels: list[str], schema: dict, reference: np.ndarray, heldout: tuple
) -> MLModel:
    """The demo's model row, created (or given its data, when it predates model data), locked for the
    registration."""
    reference_data = array_bytes(reference)
    heldout_data = arrays_bytes({"inputs": heldout[0], "labels": heldout[1]})
    model = MLModel.objects.filter(slug=slug).first()
    if model is None:
        model = model_create(
            slug=slug,
            description=description,
            class_labels=class_labels,
            input_schema=schema,
            reference_data=reference_data,
            reference_name="reference.npy",
            heldout_data=heldout_data,
            heldout_name="heldout.npz",
        )
    elif not model.reference_path:
        model = model_attach_data(
            model=model,
            reference_data=reference_data,
            reference_name="reference.npy",
            heldout_data=heldout_data,
            heldout_name="heldout.npz",
        )
    # Two processes starting at once register a demo model only once: the second waits here, then finds it done.
    return MLModel.objects.select_for_update().get(pk=model.pk)


@dataclass(frozen=True)
class RegisteredDemo:
    slug: str
    variant: str
    version: str
    metrics: dict[str, Any]
    dp_epsilon: float | None = None
    dp_delta: float | None = None


@transaction.atomic
def register_digits(*, trained: DemoModels, version: str, only_missing: bool) -> list[RegisteredDemo]:
    """Register the trained digits variants (those missing, with `only_missing`) as active versions."""
    split = digits.load_digits_split(seed=0)
    model = _demo_model(
        digits.SLUG,
        description=digits.DESCRIPTION,
        class_labels=digits.CLASS_LABELS,
        schema=digits.INPUT_SCHEMA,
        reference=split.X_train.astype(np.uint8),
        heldout=(split.X_test.astype(np.uint8), split.y_test),
    )
    wanted = missing_variants(digits.SLUG) if only_missing else list(ModelVariant.values)
    registered = []
    for variant in (trained.full, trained.defended):
        if variant.variant not in wanted:
            continue
        name = f"{version}-dp" if variant.dp_epsilon is not None else version
        version_register(
            model=model,
            variant=variant.variant,
            version=name,
            onnx_bytes=mlp_to_onnx(variant.weights, name=f"digits_{variant.variant}"),
            metrics=variant.metrics,
            provenance=variant.provenance,
            dp_epsilon=variant.dp_epsilon,
            dp_delta=variant.dp_delta,
            activate=True,
            **binding_kwargs(binding_for(variant.weights)),
        )
        registered.append(_registered(digits.SLUG, variant, name))
    return registered


def _registered(slug: str, variant: TrainedVariant, version: str) -> RegisteredDemo:
    return RegisteredDemo(
        slug=slug,
        variant=variant.variant,
        version=version,
        metrics=variant.metrics,
        dp_epsilon=variant.dp_epsilon,
        dp_delta=variant.dp_delta,
    )


@transaction.atomic
def register_breast_cancer(*, version: str, only_missing: bool) -> list[RegisteredDemo]:
    """Train and register the breast-cancer demo: the full pipeline (skl2onnx), then its distilled defended
    variant, both active."""
    split = breast_cancer.load_split()
    schema = breast_cancer.input_schema()
    parsed = InputSchema.from_dict(schema)
    model = _demo_model(
        breast_cancer.SLUG,
        description=breast_cancer.DESCRIPTION,
        class_labels=split.class_labels,
        schema=schema,
        reference=parsed.values(parsed.codes(split.X_train)),
        heldout=(parsed.values(parsed.codes(split.X_test)), split.y_test),
    )
    wanted = missing_variants(breast_cancer.SLUG) if only_missing else list(ModelVariant.values)
    registered = []
    if ModelVariant.FULL in wanted:
        row = version_register(
            model=model,
            variant=ModelVariant.FULL,
            version=version,
            onnx_bytes=breast_cancer.train_full_model_onnx(split),
            metrics={"trainer": "scikit-learn StandardScaler + LogisticRegression, converted by skl2onnx"},
            provenance=dict(split.provenance),
            activate=True,
        )
        registered.append(
            RegisteredDemo(slug=model.slug, variant=row.variant, version=row.version, metrics=row.metrics)
        )
    if ModelVariant.DEFENDED in wanted:
        row = model_distill_defended(model=model, version=version, activate=True)
        registered.append(
            RegisteredDemo(slug=model.slug, variant=row.variant, version=row.version, metrics=row.metrics)
        )
    return registered


def register_demo_models(*, version: str, only_missing: bool, dp: DPSettings | None = None) -> list[RegisteredDemo]:
    """Register every demo model's missing (or, without `only_missing`, every) variant; returns what was
    registered, empty when nothing was missing. With `dp`, the digits' defended variant is trained with DP-SGD."""
    registered: list[RegisteredDemo] = []
    if not only_missing or missing_variants(digits.SLUG):
        registered += register_digits(trained=train_demo_models(dp=dp), version=version, only_missing=only_missing)
    if not only_missing or missing_variants(breast_cancer.SLUG):
        registered += register_breast_cancer(version=version, only_missing=only_missing)
    return registered
