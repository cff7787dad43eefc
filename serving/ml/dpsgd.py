"""Differentially private training of the MLP: DP-SGD (Abadi et al., CCS 2016) with Poisson sampling, and its
privacy cost from the maintained `dp-accounting` package (Google's RDP accountant).

Each step:
1. Poisson sampling: every training row joins the batch independently with probability q = batch_size / n (the
   batch size varies). This is the sampling that `PoissonSampledDpEvent` accounts for.
2. Each example's gradient (of its own loss) is clipped to L2 norm <= clip_norm over all parameters together.
   The per-example norms come from the layer-wise identity ||a (x) d||_F = ||a|| * ||d||, so they are computed
   vectorised, without materialising one gradient per example.
3. Gaussian noise N(0, (noise_multiplier * clip_norm)^2) is added to the sum of the clipped gradients, which is
   divided by the *expected* batch size q * n (dividing by the actual size would leak it).
4. Adam (post-processing of the noisy gradient, so free in privacy terms) updates the parameters; the L2 penalty
   does not depend on the data and is added after the noise.

The privacy guarantee is (epsilon, delta)-DP for the add/remove-one-row relation, over the training rows only.
It holds only if the sampling and the noise are secret: by default they come from fresh OS entropy, and
`noise_seed` exists for tests. (A seed that sits in the repository would let anyone regenerate the noise.)
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dp_accounting
import numpy as np

from serving.ml.mlp import (
    MLPWeights,
    _Adam,
    _check_hyperparameters,
    _check_training_data,
    _forward_all,
    _he_init,
    _layer_deltas,
    _prepare,
    input_bounds,
    prepare_inputs,
)


@dataclass(frozen=True, eq=False)
class ClippedGradients:
    """The sum over a batch of per-example gradients, each clipped to `clip_norm`; `norms` are the per-example
    gradient norms before clipping (one per row)."""

    weight_grads: tuple[np.ndarray, ...]
    bias_grads: tuple[np.ndarray, ...]
    norms: np.ndarray


def _clipped_sum(
    weights: list[np.ndarray] | tuple[np.ndarray, ...],
    biases: list[np.ndarray] | tuple[np.ndarray, ...],
    a0: np.ndarray,
    y: np.ndarray,
    clip_norm: float,
) -> ClippedGradients:
    activations = _forward_all(list(weights), list(biases), a0)
    deltas = _layer_deltas(list(weights), activations, y)
    # Example i's gradient for layer l is outer(a_l[i], d_l[i]) (weights) and d_l[i] (bias); its squared norm is
    # (||a_l[i]||^2 + 1) * ||d_l[i]||^2. Summed over layers, that is the squared norm of the whole gradient.
    squared = np.zeros(y.size)
    for a, d in zip(activations[:-1], deltas, strict=True):
        squared += (np.einsum("ij,ij->i", a, a) + 1.0) * np.einsum("ij,ij->i", d, d)
    norms = np.sqrt(squared)
    # Scale factor min(1, C / norm): gradients already inside the ball are left alone.
    factors = clip_norm / np.maximum(norms, clip_norm)
    scaled = [d * factors[:, None] for d in deltas]
    return ClippedGradients(
        weight_grads=tuple(a.T @ d for a, d in zip(activations[:-1], scaled, strict=True)),
        bias_grads=tuple(d.sum(axis=0) for d in scaled),
        norms=norms,
    )


def clipped_gradient_sum(weights: MLPWeights, X: np.ndarray, y: np.ndarray, *, clip_norm: float) -> ClippedGradients:
    """The DP-SGD gradient before noise, for raw inputs `X` and labels `y`: the sum over rows of each row's
    cross-entropy gradient clipped to L2 norm `clip_norm` (all layers together). With one row it is that row's
    clipped gradient, whose norm is at most `clip_norm`."""
    if clip_norm <= 0:
        raise ValueError("clip_norm must be positive.")
    return _clipped_sum(weights.weights, weights.biases, prepare_inputs(weights, X), np.asarray(y), clip_norm)


@contextmanager
def _quiet_absl() -> Iterator[None]:
    """The accountant logs a warning for each fractional RDP order whose series fails to converge; it then leaves
    that order out, and the epsilon from the remaining orders is still a valid bound. Keep the logs readable."""
    logger = logging.getLogger("absl")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def dp_epsilon(*, sampling_probability: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """Epsilon spent by `steps` Poisson-subsampled Gaussian mechanisms (RDP accountant of `dp-accounting`),
    at the given delta. Infinite when noise_multiplier is 0."""
    if not 0.0 < sampling_probability <= 1.0 or steps < 0 or not 0.0 < delta < 1.0 or noise_multiplier < 0:
        raise ValueError("Need 0 < sampling_probability <= 1, steps >= 0, 0 < delta < 1 and noise_multiplier >= 0.")
    if noise_multiplier == 0:
        return float("inf")
    event = dp_accounting.PoissonSampledDpEvent(sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier))
    accountant = dp_accounting.rdp.RdpAccountant()  # add/remove-one neighbouring, the relation Poisson sampling needs
    with _quiet_absl():
        accountant.compose(event, steps)
        return float(accountant.get_epsilon(delta))


def train_mlp_dpsgd(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    l2: float,
    seed: int,
    clip_norm: float,
    noise_multiplier: float,
    delta: float,
    input_low: object,
    input_high: object,
    input_levels: int | None = None,
    noise_seed: int | None = None,
) -> tuple[MLPWeights, float]:
    """Train like `train_mlp`, with DP-SGD, and return the model and the epsilon it spent at `delta`.

    Runs epochs * round(n / batch_size) steps with sampling probability batch_size / n. `seed` fixes the
    initialisation; the batch sampling and the noise use `noise_seed`, fresh OS entropy when it is None (the
    default, and the only setting under which the epsilon is a real guarantee)."""
    X, y, n_classes = _check_training_data(X, y)
    _check_hyperparameters(hidden=hidden, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, l2=l2)
    if clip_norm <= 0 or noise_multiplier < 0:
        raise ValueError("clip_norm must be positive and noise_multiplier non-negative.")
    n = y.size
    if batch_size > n:
        raise ValueError("batch_size cannot exceed the number of training rows.")
    sampling_probability = batch_size / n
    steps = epochs * max(1, round(n / batch_size))
    # Validate delta (and the rest) before spending minutes training.
    epsilon = dp_epsilon(
        sampling_probability=sampling_probability, noise_multiplier=noise_multiplier, steps=steps, delta=delta
    )

    init_rng = np.random.default_rng(seed)
    private_rng = np.random.default_rng(noise_seed)
    low, high = input_bounds(input_low, input_high, X.shape[1])
    a0 = _prepare(X, low=low, high=high, input_levels=input_levels)
    weights, biases = _he_init([X.shape[1], *hidden, n_classes], init_rng)
    params = weights + biases
    optimiser = _Adam(params, learning_rate)
    expected_batch = sampling_probability * n
    noise_std = noise_multiplier * clip_norm
    for _step in range(steps):
        batch = np.flatnonzero(private_rng.random(n) < sampling_probability)
        if batch.size:
            clipped = _clipped_sum(weights, biases, a0[batch], y[batch], clip_norm)
            sums = [*clipped.weight_grads, *clipped.bias_grads]
        else:  # an empty batch is still a step the accountant counts: release pure noise
            sums = [np.zeros_like(p) for p in params]
        noisy = [(s + private_rng.normal(0.0, noise_std, size=s.shape)) / expected_batch for s in sums]
        for i, w in enumerate(weights):
            noisy[i] = noisy[i] + l2 * w
        optimiser.step(params, noisy)
    model = MLPWeights(
        weights=tuple(weights), biases=tuple(biases), input_low=low, input_high=high, input_levels=input_levels
    )
    return model, epsilon
