"""The operator's workflows on top of the registry's services: register a model's version from its files in one
step (`register_model`, the admin form), and distil a defended variant from the active full one
(`distill_defended_model`). Each is one transaction of `serving.registry.services` calls."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.db import transaction

from serving.input_schema import InputSchema, SchemaError
from serving.ml.artifacts import ArtifactError, array_bytes, arrays_bytes
from serving.ml.distill import DistillationConfig, distill
from serving.registry.datafiles import DataFileError, read_inputs, read_labelled
from serving.registry.errors import ArtifactRejectedError, InvalidModelError, InvalidVersionError
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import active_version, model_reference_codes, model_schema, version_classifier
from serving.registry.services import (
    _class_labels,
    binding_kwargs,
    model_attach_data,
    model_create,
    version_register,
)
from tiers.models import ModelVariant


def _same_description(
    model: MLModel, *, class_labels, input_schema, reference_data, reference_name, heldout_data, heldout_name
) -> None:
    """Refuse a registration that describes an existing model differently (its versions were checked against it)."""
    if class_labels is not None and _class_labels(class_labels) != list(model.class_labels):
        raise InvalidModelError(
            f"Model '{model.slug}' exists with the classes {', '.join(model.class_labels)}; a model's classes cannot "
            "change (register a new model)."
        )
    if input_schema is not None:
        try:
            given = InputSchema.from_dict(input_schema).to_dict()
        except SchemaError as exc:
            raise InvalidModelError(f"The input schema is not valid: {exc}") from exc
        if given != model_schema(model=model).to_dict():
            raise InvalidModelError(
                f"Model '{model.slug}' exists with another input schema; a model's schema cannot change (register a "
                "new model)."
            )
    if reference_data is not None:
        schema = model_schema(model=model)
        try:
            codes = schema.codes(read_inputs(reference_data, name=reference_name, schema=schema))
        except DataFileError as exc:
            raise InvalidModelError(str(exc)) from exc
        if hashlib.sha256(array_bytes(codes)).hexdigest() != model.reference_sha256:
            raise InvalidModelError(
                f"Model '{model.slug}' exists with other reference data; leave it out to keep the model's own."
            )
    if heldout_data is not None:
        schema = model_schema(model=model)
        try:
            inputs, labels = read_labelled(
                heldout_data, name=heldout_name, schema=schema, class_labels=list(model.class_labels)
            )
        except DataFileError as exc:
            raise InvalidModelError(str(exc)) from exc
        stored = arrays_bytes({"inputs": schema.codes(inputs), "labels": labels})
        if hashlib.sha256(stored).hexdigest() != model.heldout_sha256:
            raise InvalidModelError(
                f"Model '{model.slug}' exists with another held-out set (or none): it is fixed when the model is "
                "created; leave it out."
            )


@transaction.atomic
def model_register_version(
    *,
    slug: str,
    variant: str,
    version: str,
    onnx_bytes: bytes,
    activate: bool,
    description: str = "",
    class_labels: list[str] | None = None,
    input_schema: object | None = None,
    reference_data: bytes | None = None,
    reference_name: str = "",
    heldout_data: bytes | None = None,
    heldout_name: str = "",
    **binding_and_records: Any,
) -> ModelVersion:
    """The operator's one step (the `register_model` command and the admin's form): create the model from its
    description when it does not exist yet (schema, classes and reference data are then required), else check that
    what is given matches it, then register the graph as a version (`version_register`, whose keyword arguments
    `binding_and_records` carries: input/output names, layout, output kind, embedding output, metrics,
    provenance). All or nothing: a refused version leaves no new model behind."""
    model = MLModel.objects.filter(slug=slug).first()
    if model is None:
        missing = [
            name
            for name, value in (
                ("the classes", class_labels),
                ("the schema", input_schema),
                ("the reference data", reference_data),
            )
            if value is None
        ]
        if missing:
            raise InvalidModelError(f"Model '{slug}' does not exist yet: creating it needs {', '.join(missing)}.")
        model = model_create(
            slug=slug,
            description=description,
            class_labels=class_labels,
            input_schema=input_schema,
            reference_data=reference_data,
            reference_name=reference_name,
            heldout_data=heldout_data,
            heldout_name=heldout_name,
        )
    elif not model.reference_path and reference_data is not None:
        model = model_attach_data(
            model=model,
            reference_data=reference_data,
            reference_name=reference_name,
            heldout_data=heldout_data,
            heldout_name=heldout_name,
        )
    else:
        _same_description(
            model,
            class_labels=class_labels,
            input_schema=input_schema,
            reference_data=reference_data,
            reference_name=reference_name,
            heldout_data=heldout_data,
            heldout_name=heldout_name,
        )
    return version_register(
        model=model, variant=variant, version=version, onnx_bytes=onnx_bytes, activate=activate, **binding_and_records
    )


def model_distill_defended(
    *, model: MLModel, version: str, activate: bool, config: DistillationConfig | None = None
) -> ModelVersion:
    """Train a defended student of the model's active full version (`serving.ml.distill`: its softened
    probabilities over the reference data and schema-aware variants), export it to ONNX and register it as a
    defended version, its agreement with the full model recorded. Raises InvalidVersionError when the model has
    no active full version, and what `version_register` raises."""
    from serving.ml.onnx_export import binding_for, mlp_to_onnx  # the onnx package: see version_register

    full = active_version(model_slug=model.slug, variant=ModelVariant.FULL)
    if full is None:
        raise InvalidVersionError(f"Model '{model.slug}' has no active full version to distil from.")
    try:
        teacher = version_classifier(version=full)
        reference = model_reference_codes(model=model)
    except ArtifactError as exc:
        raise ArtifactRejectedError(f"Cannot read what the distillation needs: {exc}") from exc
    schema = model_schema(model=model)
    started = time.perf_counter()
    distilled = distill(teacher.logits, reference, schema, n_classes=len(model.class_labels), config=config)
    metrics = {**distilled.metrics, "teacher_version": full.version, "seconds": round(time.perf_counter() - started, 2)}
    provenance = {"distilled_from": f"{model.slug} full {full.version}", "reference_rows": int(reference.shape[0])}
    return version_register(
        model=model,
        variant=ModelVariant.DEFENDED,
        version=version,
        onnx_bytes=mlp_to_onnx(distilled.weights, name=f"{model.slug}_defended"),
        metrics=metrics,
        provenance=provenance,
        activate=activate,
        **binding_kwargs(binding_for(distilled.weights)),
    )
