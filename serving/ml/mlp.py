"""A small multi-layer perceptron in numpy: Moat's own models (the demo models, distilled defended models, the red
team's copies) are trained with it, then exported to ONNX (`serving.ml.onnx_export`) and served like any other
model. `forward_logits` is the reference computation the export is tested against, and what offline simulations run.

Inputs are raw values within per-feature bounds (`input_low`, `input_high`: the model's input schema). A model may
take coarsened inputs (`input_levels`): each feature is mapped to the nearest of that many evenly spaced values over
its bounds; the coarsening is part of the model, so the same raw request gives the same answer however it is served.
The first layer sees each feature scaled onto 0..1 by its bounds.

Training (`train_mlp`) is mini-batch Adam on the mean softmax cross-entropy with L2 weight decay and He
initialisation. Everything random comes from one `numpy.random.Generator` seeded with `seed`, so the same call on
the same machine gives bit-for-bit identical weights.
"""

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class MLPWeights:
    """The parameters of an MLP: `weights[i]` has shape (inputs_i, outputs_i) and chains into `weights[i+1]`;
    hidden layers use ReLU, the last layer gives logits. Raw inputs are coarsened to `input_levels` evenly spaced
    values over [input_low, input_high] per feature (when set), then scaled onto 0..1 by those bounds.

    The arrays are copied to read-only float64 on construction (bounds given as numbers apply to every input): one
    instance may be shared by many callers and must never change under them."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    input_low: np.ndarray
    input_high: np.ndarray
    input_levels: int | None = None

    def __post_init__(self) -> None:
        weights = tuple(_frozen_float64(w) for w in self.weights)
        biases = tuple(_frozen_float64(b) for b in self.biases)
        if not weights or len(weights) != len(biases):
            raise ValueError("An MLP needs at least one layer and one bias vector per weight matrix.")
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[1] or 0 in w.shape:
                raise ValueError(f"Layer {i}: weight {w.shape} and bias {b.shape} do not fit together.")
            if i and weights[i - 1].shape[1] != w.shape[0]:
                raise ValueError(
                    f"Layer {i} takes {w.shape[0]} inputs but layer {i - 1} gives {weights[i - 1].shape[1]}."
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ValueError(f"Layer {i} has non-finite parameters.")
        n_inputs = weights[0].shape[0]
        low, high = input_bounds(self.input_low, self.input_high, n_inputs)
        if self.input_levels is not None and not (isinstance(self.input_levels, int) and self.input_levels >= 2):
            raise ValueError("input_levels must be None or an integer >= 2.")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)
        object.__setattr__(self, "input_low", low)
        object.__setattr__(self, "input_high", high)

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[1])

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(w.shape[1]) for w in self.weights[:-1])


def _frozen_float64(array: np.ndarray) -> np.ndarray:
    frozen = np.array(array, dtype=np.float64, order="C", copy=True)
    frozen.setflags(write=False)
    return frozen


def input_bounds(low: object, high: object, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature bounds (n_inputs,) each, read-only float64, from numbers or arrays. Raises ValueError unless
    they are finite with low < high everywhere."""
    low_array = _frozen_float64(np.broadcast_to(np.asarray(low, dtype=np.float64), (n_inputs,)))
    high_array = _frozen_float64(np.broadcast_to(np.asarray(high, dtype=np.float64), (n_inputs,)))
    if not (np.isfinite(low_array).all() and np.isfinite(high_array).all() and (low_array < high_array).all()):
        raise ValueError("input bounds must be finite, with input_low < input_high for every input.")
    return low_array, high_array


def coarsen(x: np.ndarray, levels: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map each feature to the nearest of `levels` evenly spaced values over its [low, high] (values outside are
    clipped). Rounding is numpy's round-half-to-even (ONNX's Round too), so the mapping is exact and the same
    everywhere."""
    step = (high - low) / (levels - 1)
    return np.round((np.clip(x, low, high) - low) / step) * step + low


def _prepare(x: np.ndarray, *, low: np.ndarray, high: np.ndarray, input_levels: int | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if input_levels is not None:
        x = coarsen(x, input_levels, low, high)
    return (x - low) / (high - low)


def prepare_inputs(weights: MLPWeights, x: np.ndarray) -> np.ndarray:
    """The first layer's input for raw `x` (n, n_inputs): coarsened (if the model says so), then scaled onto 0..1."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != weights.n_inputs:
        raise ValueError(f"Expected inputs of shape (n, {weights.n_inputs}), got {x.shape}.")
    return _prepare(x, low=weights.input_low, high=weights.input_high, input_levels=weights.input_levels)


def forward_logits(weights: MLPWeights, x: np.ndarray) -> np.ndarray:
    """Logits (n, n_outputs) for raw inputs `x` (n, n_inputs). Vectorised over rows; loops over layers."""
    return forward_hidden(weights, x)[-1]


def forward_hidden(weights: MLPWeights, x: np.ndarray) -> list[np.ndarray]:
    """Every hidden layer's activations, then the logits: [h1, ..., logits]."""
    h = prepare_inputs(weights, x)
    out = []
    last = len(weights.weights) - 1
    for i, (w, b) in enumerate(zip(weights.weights, weights.biases, strict=True)):
        h = h @ w + b
        if i < last:
            np.maximum(h, 0.0, out=h)
        out.append(h)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax. Subtracting each row's maximum first keeps exp() from overflowing on large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def accuracy(weights: MLPWeights, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose top-1 class (argmax of the logits) equals `y`."""
    y = np.asarray(y)
    if y.size == 0:
        raise ValueError("accuracy of an empty set is undefined.")
    return float(np.mean(forward_logits(weights, X).argmax(axis=1) == y))


# --- Training internals, shared with dpsgd.py. They work on prepared (coarsened and scaled) inputs. ------------


def _check_training_data(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """X as float64 and y as int64 class indices (n,) or float64 target distributions (n, k), with k."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim not in (1, 2) or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"Expected X (n, features) and y (n,) or (n, classes), got {X.shape} and {y.shape}.")
    if y.ndim == 2:
        y = y.astype(np.float64)
        if y.shape[1] < 2 or not np.isfinite(y).all() or y.min() < 0 or not np.allclose(y.sum(axis=1), 1.0):
            raise ValueError("Soft targets must be rows of probabilities over at least two classes.")
        return X, y, int(y.shape[1])
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError("y must hold integer class indices 0..k-1.")
    return X, y.astype(np.int64), int(y.max()) + 1


def _check_hyperparameters(
    *, hidden: tuple[int, ...], epochs: int, learning_rate: float, batch_size: int, l2: float
) -> None:
    if any(h < 1 for h in hidden) or epochs < 1 or batch_size < 1 or learning_rate <= 0 or l2 < 0:
        raise ValueError("hidden sizes, epochs and batch_size must be >= 1, learning_rate > 0 and l2 >= 0.")


def _he_init(sizes: list[int], rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """He (Kaiming) normal initialisation, suited to ReLU layers: N(0, 2 / fan_in); biases start at zero."""
    weights = [
        rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out)) for fan_in, fan_out in itertools.pairwise(sizes)
    ]
    biases = [np.zeros(fan_out) for fan_out in sizes[1:]]
    return weights, biases


def _forward_all(weights: list[np.ndarray], biases: list[np.ndarray], a0: np.ndarray) -> list[np.ndarray]:
    """The input of every layer, then the logits: [a0, a1, ..., logits]."""
    activations = [a0]
    h = a0
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w + b
        if i < last:
            h = np.maximum(h, 0.0)
        activations.append(h)
    return activations


def _layer_deltas(weights: list[np.ndarray], activations: list[np.ndarray], y: np.ndarray) -> list[np.ndarray]:
    """Per-example gradients of each example's own cross-entropy loss with respect to each layer's
    pre-activation, shape (n, outputs_i), for class indices `y` (n,) or target distributions (n, k). Not averaged:
    the caller sums, averages or clips them per example."""
    delta = softmax(activations[-1])
    if y.ndim == 2:
        delta -= y
    else:
        delta[np.arange(y.size), y] -= 1.0
    deltas = [delta]
    for i in range(len(weights) - 1, 0, -1):
        # Back through layer i's weights and the ReLU of layer i-1 (its output is activations[i]).
        delta = (delta @ weights[i].T) * (activations[i] > 0.0)
        deltas.append(delta)
    deltas.reverse()
    return deltas


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(y.size), y].mean())


class _Adam:
    """Adam (Kingma & Ba, 2015) over a list of parameter arrays, updated in place."""

    def __init__(
        self, params: list[np.ndarray], learning_rate: float, beta1: float = 0.9, beta2: float = 0.999
    ) -> None:
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, 1e-8
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        correction1 = 1.0 - self.beta1**self.t
        correction2 = 1.0 - self.beta2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            p -= self.learning_rate * (m / correction1) / (np.sqrt(v / correction2) + self.eps)


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    l2: float,
    seed: int,
    input_low: object,
    input_high: object,
    input_levels: int | None = None,
) -> MLPWeights:
    """Train an MLP on raw inputs `X` (n, features) within [input_low, input_high] (numbers, or one per feature)
    and labels `y` in 0..k-1 (or target distributions (n, k): a teacher's probabilities, for distillation), with
    mini-batch Adam on the mean cross-entropy plus `l2`/2 * ||W||^2 (weights only, not biases). `input_levels`
    coarsens the inputs, and the returned model coarsens its own inputs the same way at inference. Deterministic
    for a given `seed`."""
    X, y, n_classes = _check_training_data(X, y)
    _check_hyperparameters(hidden=hidden, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, l2=l2)
    rng = np.random.default_rng(seed)
    low, high = input_bounds(input_low, input_high, X.shape[1])
    a0 = _prepare(X, low=low, high=high, input_levels=input_levels)
    weights, biases = _he_init([X.shape[1], *hidden, n_classes], rng)
    params = weights + biases  # the same array objects: the optimiser updates the layers in place
    optimiser = _Adam(params, learning_rate)
    n = y.shape[0]
    for _epoch in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            activations = _forward_all(weights, biases, a0[batch])
            deltas = _layer_deltas(weights, activations, y[batch])
            grad_w = [a.T @ d / batch.size + l2 * w for a, d, w in zip(activations[:-1], deltas, weights, strict=True)]
            grad_b = [d.mean(axis=0) for d in deltas]
            optimiser.step(params, grad_w + grad_b)
    return MLPWeights(
        weights=tuple(weights), biases=tuple(biases), input_low=low, input_high=high, input_levels=input_levels
    )
