"""The attacker's copy of the model: a numpy MLP trained on what the API answered, never on the platform's weights.

Two kinds of training targets, one per thing an answer can carry:

- `soft_targets(labels, confidences)`: the public tiers' answer (top-1 label and its rounded confidence) turned into
  a probability vector: the confidence on the label, the rest spread evenly. Trained with cross-entropy, this is
  the retraining attack of Tramer et al. ("Stealing Machine Learning Models via Prediction APIs", USENIX Security
  2016, section 5) and of Knockoff Nets when the inputs are natural.
- `logit_targets(probabilities)`: the enterprise tier's exact probability vector, whose logarithm is the model's
  logit vector up to one constant per row (softmax is shift-invariant). Regressing a copy's centred logits on these
  is Tramer et al.'s equation solving (section 4) for a model whose parameters are far too many to solve for
  exactly (the full model has ~50,000): every answer gives nine independent equations instead of one label.

`train_copy` is mini-batch Adam over the same MLP layout the platform serves (`serving.ml.mlp.MLPWeights`), reusing
its initialisation and optimiser; only the loss at the output differs. Deterministic for a given seed.
"""

from dataclasses import dataclass

import numpy as np

from serving.ml.mlp import MLPWeights, _Adam, _forward_all, _he_init, _prepare, forward_logits, input_bounds, softmax

SOFT = "soft"
LOGITS = "logits"
# Log-probabilities are clipped here: an answer of exactly 0.0 (a softmax underflow) would be minus infinity.
LOG_FLOOR = -700.0
# A confidence below 1/10 cannot be the top-1 of ten classes; a rounded "0.0" is read as that floor.
MIN_CONFIDENCE = 0.1


@dataclass(frozen=True)
class CopyRecipe:
    """How the attacker trains a copy. `epochs` passes over the answers, but never fewer than `min_steps` nor more
    than `max_steps` gradient steps (a hundred answers need more than a few dozen steps; ten thousand need no
    more than the cap to fit)."""

    hidden: tuple[int, ...]
    epochs: int
    learning_rate: float
    batch_size: int
    l2: float
    min_steps: int
    max_steps: int


# Retraining on labels: a thief fits its answers as closely as it can (a layer wider than the defended model's, no
# weight decay, 150 epochs), the copy that memorises most of what it was answered.
LABEL_RECIPE = CopyRecipe(
    hidden=(256,), epochs=150, learning_rate=2e-3, batch_size=64, l2=0.0, min_steps=2_000, max_steps=40_000
)
# A thief that trains the way the platform trains its own models (60 epochs, weight decay) and so fits its answers
# less closely: about as good a copy, and the measure of how much the watermark verdict owes to overfitting.
LIGHT_RECIPE = CopyRecipe(
    hidden=(128,), epochs=60, learning_rate=2e-3, batch_size=64, l2=1e-4, min_steps=2_000, max_steps=40_000
)
# Equation solving: the thief guesses a model as large as the one it steals (two hidden layers), since every logit
# it is given is worth fitting.
LOGIT_RECIPE = CopyRecipe(
    hidden=(256, 128), epochs=100, learning_rate=1e-3, batch_size=64, l2=0.0, min_steps=1_500, max_steps=8_000
)
# The adaptive campaign's working copy, retrained every round to find its boundary: small and quick.
WORKING_RECIPE = CopyRecipe(
    hidden=(64,), epochs=30, learning_rate=3e-3, batch_size=64, l2=0.0, min_steps=300, max_steps=1_500
)


def soft_targets(labels: np.ndarray, confidences: np.ndarray, *, n_classes: int) -> np.ndarray:
    """(n, n_classes) rows: `confidence` on the answered label, the remainder spread evenly over the others."""
    labels = np.asarray(labels, dtype=np.int64)
    confidence = np.clip(np.asarray(confidences, dtype=np.float64), MIN_CONFIDENCE, 1.0)
    targets = np.repeat(((1.0 - confidence) / (n_classes - 1))[:, None], n_classes, axis=1)
    targets[np.arange(labels.size), labels] = confidence
    return targets


def logit_targets(probabilities: np.ndarray) -> np.ndarray:
    """Centred log-probabilities (n, C): the logits up to the constant softmax forgets."""
    logs = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), np.exp(LOG_FLOOR)))
    return logs - logs.mean(axis=1, keepdims=True)


def _output_delta(logits: np.ndarray, targets: np.ndarray, kind: str) -> np.ndarray:
    if kind == SOFT:  # d(cross-entropy with soft targets)/d(logits)
        return softmax(logits) - targets
    # Squared error of the centred logits; targets are centred, so the centring's own gradient term vanishes.
    centred = logits - logits.mean(axis=1, keepdims=True)
    return 2.0 * (centred - targets) / logits.shape[1]


def train_copy(
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    kind: str,
    recipe: CopyRecipe,
    bounds: tuple[object, object],
    seed: int = 0,
) -> MLPWeights:
    """Train a copy on raw inputs (n, d) within `bounds` (the input bounds the API publishes: numbers or one per
    feature) and `targets` (n, C) of `kind` SOFT or LOGITS. Raises ValueError for an unknown kind, no rows, or
    mismatched shapes."""
    if kind not in (SOFT, LOGITS):
        raise ValueError(f"unknown target kind {kind!r}")
    X = np.asarray(inputs, dtype=np.float64)
    T = np.asarray(targets, dtype=np.float64)
    if X.ndim != 2 or T.ndim != 2 or X.shape[0] != T.shape[0] or X.shape[0] == 0:
        raise ValueError(f"expected inputs (n, features) and targets (n, classes), got {X.shape} and {T.shape}")
    rng = np.random.default_rng(seed)
    low, high = input_bounds(*bounds, X.shape[1])
    a0 = _prepare(X, low=low, high=high, input_levels=None)
    weights, biases = _he_init([X.shape[1], *recipe.hidden, T.shape[1]], rng)
    params = weights + biases
    optimiser = _Adam(params, recipe.learning_rate)
    n = X.shape[0]
    per_epoch = -(-n // recipe.batch_size)
    steps = min(max(recipe.epochs * per_epoch, recipe.min_steps), recipe.max_steps)
    done = 0
    while done < steps:
        order = rng.permutation(n)
        for start in range(0, n, recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            activations = _forward_all(weights, biases, a0[batch])
            delta = _output_delta(activations[-1], T[batch], kind)
            deltas = [delta]
            for i in range(len(weights) - 1, 0, -1):
                delta = (delta @ weights[i].T) * (activations[i] > 0.0)
                deltas.append(delta)
            deltas.reverse()
            grad_w = [
                a.T @ d / batch.size + recipe.l2 * w for a, d, w in zip(activations[:-1], deltas, weights, strict=True)
            ]
            optimiser.step(params, grad_w + [d.mean(axis=0) for d in deltas])
            done += 1
            if done >= steps:
                break
    return MLPWeights(weights=tuple(weights), biases=tuple(biases), input_low=low, input_high=high)


def predict_labels(model: MLPWeights, inputs: np.ndarray) -> np.ndarray:
    """The copy's top-1 class index per row."""
    return forward_logits(model, np.asarray(inputs, dtype=np.float64)).argmax(axis=1)
