"""Small, fast stand-ins for trained models and hand-made artifact files."""

import itertools
from pathlib import Path

import numpy as np

from serving.ml.artifacts import save_artifact
from serving.ml.mlp import MLPWeights

DIGIT_LABELS = [str(digit) for digit in range(10)]


def random_weights(
    *, inputs: int = 64, hidden: tuple[int, ...] = (4,), outputs: int = 10, seed: int = 0, input_levels=None
) -> MLPWeights:
    rng = np.random.default_rng(seed)
    sizes = [inputs, *hidden, outputs]
    return MLPWeights(
        weights=tuple(rng.normal(size=(a, b)) for a, b in itertools.pairwise(sizes)),
        biases=tuple(rng.normal(size=b) for b in sizes[1:]),
        input_scale=1 / 16,
        input_levels=input_levels,
    )


def write_artifact(path: Path, weights: MLPWeights | None = None, labels: list[str] | None = None) -> str:
    """Save a valid artifact (a random digits-shaped model by default); returns its sha256."""
    return save_artifact(path, weights or random_weights(), class_labels=labels or DIGIT_LABELS)


def valid_arrays(weights: MLPWeights | None = None, labels: list[str] | None = None) -> dict[str, np.ndarray]:
    """The entries of a valid format-1 artifact, for tests that break one of them."""
    weights = weights or random_weights()
    arrays = {"format_version": np.array(1), "n_layers": np.array(len(weights.weights))}
    arrays |= {f"W{i}": w for i, w in enumerate(weights.weights)}
    arrays |= {f"b{i}": b for i, b in enumerate(weights.biases)}
    arrays |= {
        "input_scale": np.array(weights.input_scale),
        "input_levels": np.array(-1),
        "class_labels": np.array(labels or DIGIT_LABELS),
    }
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays with plain numpy.savez (to a file object, so numpy does not append '.npz')."""
    with open(path, "wb") as file:
        np.savez(file, **arrays)
