"""What the portal's API page says of each served model, from the registry: its input (from its schema), classes,
which model answers each plan, and an example body from its reference data. No text is written per model."""

from dataclasses import dataclass

import orjson

from serving.predictions.schema import served_models
from tiers.models import ModelVariant


@dataclass(frozen=True)
class DocumentedModel:
    id: str
    description: str
    version: str
    classes: list[str]
    input_description: str
    n_features: int
    accepts_pictures: bool
    image_shape: str  # "28x28" or "32x32x3"; empty for tabular models
    features: list[dict]  # tabular: name, min, max, step of each
    served_by: str
    example_body: str  # {"inputs": [[...]]} with one natural input
    example_row: str  # the input alone, as JSON


def documented_models() -> list[DocumentedModel]:
    """Every served model, by id."""
    found = []
    for model in served_models():
        schema = model.schema
        row = list(model.example_input)
        served_by = (
            "a lighter, defended model on the Free and Pro plans; the full model on Enterprise"
            if model.has_defended
            else "the full model on every plan; Free and Pro answers go through output defenses"
        )
        found.append(
            DocumentedModel(
                id=model.slug,
                description=model.description,
                version=model.version if model.variant == ModelVariant.FULL else "",
                classes=list(model.class_labels),
                input_description=schema.describe_input(),
                n_features=schema.n_features,
                accepts_pictures=schema.is_image,
                image_shape="x".join(str(side) for side in schema.image_shape),
                features=[{"name": f.name, "min": f.min, "max": f.max, "step": f.step} for f in schema.features],
                served_by=served_by,
                example_body=orjson.dumps({"inputs": [row]}).decode(),
                example_row=orjson.dumps(row).decode(),
            )
        )
    return found
