"""Distilling a defended model from any full model: a smaller numpy MLP trained on the full model's softened
probabilities (Hinton et al. 2015) over the model's reference inputs and schema-aware natural variants of them,
then exported to ONNX like Moat's other models.

Why this is the defended model (README, "Models"): a thief who labels its own natural inputs through the public API
learns the task from the answers, so a public model much weaker than the full one only makes the thief's copy
better than it. A student that learnt the full model's behaviour on the natural inputs, from softened
probabilities, is as close to it there as the owner's data allow, while its own confidences are softened and it
never saw the full model's behaviour away from natural inputs, where synthetic queries probe.

Variants (`schema_variants`), by schema kind, with no knowledge of any particular model:

- tabular: each feature moved by Gaussian noise of a tenth of its spread in the reference data;
- image: a one-pixel shift now and then, the intensities scaled by 0.8..1.2 around the value range's low end (a
  lighter or heavier stroke, a dimmer or brighter photo), and a little noise on every value;

all rounded back onto the schema's grid and clipped to its bounds. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from serving.input_schema import InputSchema
from serving.ml.mlp import MLPWeights, forward_logits, softmax, train_mlp


@dataclass(frozen=True)
class DistillationConfig:
    hidden: tuple[int, ...] | None = None  # None: sized from the input (see `student_hidden`)
    epochs: int = 30
    learning_rate: float = 2e-3
    batch_size: int = 64
    l2: float = 1e-4
    temperature: float = 2.0
    augmented_copies: int = 9
    seed: int = 0


def student_hidden(schema: InputSchema, n_classes: int) -> tuple[int, ...]:
    """One hidden layer, from 32 to 256 units, growing with the input's width and the number of classes."""
    return (int(min(256, max(32, schema.n_features // 2, 4 * n_classes))),)


def schema_variants(codes: np.ndarray, schema: InputSchema, rng: np.random.Generator, spread: np.ndarray) -> np.ndarray:
    """One natural variant of each canonical row (n, d), as codes of the schema (see the module docstring).
    `spread` is the reference data's per-feature standard deviation in grid steps."""
    values = codes.astype(np.float64)
    n = values.shape[0]
    if schema.is_image:
        images = values.reshape(n, schema.height, schema.width, schema.channels)
        shifted = np.flatnonzero(rng.random(n) < 0.1)
        for i in shifted:
            dy, dx = (int(s) for s in rng.integers(-1, 2, 2))
            images[i] = np.roll(images[i], shift=(dy, dx), axis=(0, 1))
            if dy:
                images[i, 0 if dy > 0 else -1] = 0.0
            if dx:
                images[i, :, 0 if dx > 0 else -1] = 0.0
        values = images.reshape(n, -1) * rng.uniform(0.8, 1.2, (n, 1))
        values += rng.normal(0.0, 0.01, values.shape) * schema.top_code
    else:
        values += rng.normal(0.0, 1.0, values.shape) * (0.1 * spread)
    return np.clip(np.rint(values), 0, schema.top_code).astype(schema.code_dtype)


@dataclass(frozen=True, eq=False)
class Distilled:
    weights: MLPWeights
    metrics: dict[str, Any]


def distill(
    teacher_logits: Callable[[np.ndarray], np.ndarray],
    reference: np.ndarray,
    schema: InputSchema,
    *,
    n_classes: int,
    config: DistillationConfig | None = None,
) -> Distilled:
    """Train a student on `teacher_logits(values)` softened at the configuration's temperature, over the canonical
    `reference` rows and `augmented_copies` variants of each; returns it with its training figures and its
    agreement with the teacher on variants it never trained on. Deterministic for the configuration's seed."""
    config = config or DistillationConfig()
    codes = schema.check_codes(reference)
    rng = np.random.default_rng(config.seed)
    spread = codes.astype(np.float64).std(axis=0)
    training = np.concatenate(
        [codes, *(schema_variants(codes, schema, rng, spread) for _ in range(config.augmented_copies))]
    )
    values = schema.values(training)
    targets = softmax(teacher_logits(values) / config.temperature)
    hidden = config.hidden or student_hidden(schema, n_classes)
    weights = train_mlp(
        values,
        targets,
        hidden=hidden,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        l2=config.l2,
        seed=config.seed,
        input_low=schema.low,
        input_high=schema.high,
    )
    unseen = schema.values(schema_variants(codes, schema, np.random.default_rng(config.seed + 1), spread))
    agreement = float(np.mean(forward_logits(weights, unseen).argmax(axis=1) == teacher_logits(unseen).argmax(axis=1)))
    metrics = {
        "trainer": "distillation",
        "hidden_layers": list(hidden),
        "epochs": config.epochs,
        "training_rows": int(training.shape[0]),
        "agreement_with_full_on_variants": round(agreement, 6),
        "training": {key: value for key, value in asdict(config).items() if key not in ("hidden", "epochs")},
    }
    return Distilled(weights=weights, metrics=metrics)
