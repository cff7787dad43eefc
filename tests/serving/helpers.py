"""Small, fast stand-ins for trained models, their ONNX graphs and their data files."""

import itertools

import numpy as np

from serving.input_schema import InputSchema
from serving.ml.artifacts import array_bytes, arrays_bytes
from serving.ml.digits import INPUT_SCHEMA as DIGITS_SCHEMA
from serving.ml.mlp import MLPWeights
from serving.ml.onnx_export import binding_for, mlp_to_onnx
from serving.registry.models import MLModel
from serving.registry.services import binding_kwargs, model_create

DIGIT_LABELS = [str(digit) for digit in range(10)]
DIGITS = InputSchema.from_dict(DIGITS_SCHEMA)


def random_weights(
    *,
    inputs: int = 64,
    hidden: tuple[int, ...] = (4,),
    outputs: int = 10,
    seed: int = 0,
    input_levels: int | None = None,
    low: object = 0.0,
    high: object = 16.0,
) -> MLPWeights:
    rng = np.random.default_rng(seed)
    sizes = [inputs, *hidden, outputs]
    return MLPWeights(
        weights=tuple(rng.normal(size=(a, b)) for a, b in itertools.pairwise(sizes)),
        biases=tuple(rng.normal(size=b) for b in sizes[1:]),
        input_low=low,
        input_high=high,
        input_levels=input_levels,
    )


def random_onnx(**kwargs) -> bytes:
    """A valid ONNX graph of a random MLP (digits-shaped by default): input `x`, outputs `logits`, `embedding`."""
    return mlp_to_onnx(random_weights(**kwargs))


def onnx_binding(weights: MLPWeights | None = None) -> dict[str, str]:
    """version_register's binding arguments for one of Moat's exported graphs."""
    return binding_kwargs(binding_for(weights or random_weights()))


def natural_rows(n: int = 120, *, features: int = 64, high: int = 16, seed: int = 0) -> np.ndarray:
    """`n` distinct integer rows (n, features) in 0..high, uint8: reference data for a digits-shaped model."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, high + 1, (n, features)).astype(np.uint8)


def tabular_schema(n: int, *, high: float = 10.0, step: float = 0.01) -> dict:
    return {
        "kind": "tabular",
        "features": [{"name": f"f{i}", "min": 0.0, "max": high, "step": step} for i in range(n)],
    }


def create_model(
    *,
    slug: str = "digits",
    schema: dict | None = None,
    classes: list[str] | None = None,
    reference: np.ndarray | None = None,
    heldout: tuple[np.ndarray, np.ndarray] | None = None,
    description: str = "",
) -> MLModel:
    """A model created through the service (digits-shaped by default, with random natural rows)."""
    reference = natural_rows() if reference is None else reference
    return model_create(
        slug=slug,
        description=description,
        class_labels=classes or DIGIT_LABELS,
        input_schema=schema or DIGITS_SCHEMA,
        reference_data=array_bytes(reference),
        reference_name="reference.npy",
        heldout_data=arrays_bytes({"inputs": heldout[0], "labels": heldout[1]}) if heldout is not None else None,
        heldout_name="heldout.npz",
    )
