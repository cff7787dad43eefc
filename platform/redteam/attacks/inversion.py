"""Model inversion from confidences alone (Fredrikson, Jha & Ristenpart, "Model Inversion Attacks that Exploit
Confidence Information", CCS 2015): reconstruct a representative input of a class.

Fredrikson et al.'s attacker knows the feature priors and climbs the model's confidence in the target class. Put as
one objective, it looks for the input most probable *under the class*, `argmax_x p(x | c) = argmax_x
[log p(c | x) + log p(x)]`; for classes that are Gaussian with a shared covariance (the setting in which a logistic
regression is the right model) that is exactly the class mean. The attacker here:

- models the prior p(x) as a Gaussian fitted to its own natural inputs, unlabelled (a shrunk covariance: a few
  hundred rows do not determine thirty features' covariance well), and climbs in its whitened coordinates z, where
  the prior's gradient is simply -z and one step size suits every feature;
- estimates the gradient of log p(c | x) by simultaneous perturbation (SPSA, Spall 1992): the difference of the
  answered log-confidences at z + c*delta and z - c*delta, delta a random sign vector, is a gradient estimate from
  two queries whatever the dimension, where finite differences would need 2d; a few such pairs per step, asked in
  one batch, are averaged;
- reads p(c | x) from what the tier shows: the class's probability, or the served label's confidence (its
  complement for a binary model when the label is another class; for more classes, an even share of it), a rounded 0
  clipped to a quarter of the rounding step;
- returns the average of the second half of its iterates (Polyak-Ruppert averaging), which the per-input noise of the
  public tiers would otherwise shake.

`inversion_distance` is the measurement: the reconstruction's distance to the class mean of held-out data, relative
to the overall held-out mean's distance to it, in units of each feature's held-out spread. Below 1, the answers
taught the attacker what the class looks like beyond what the population does; the starting point, the prior's
mean, scores about 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redteam.attacks.oracle import (
    Answers,
    BudgetExhausted,
    Evaluation,
    InputGrid,
    MeteredOracle,
    Oracle,
    answer_resolution,
)

# Shrinkage of the prior's covariance towards its diagonal.
PRIOR_SHRINKAGE = 0.2
# SPSA gains (Spall's recommended decay exponents): step a / (k + 1 + A)^0.602, perturbation c / (k + 1)^0.101.
STEP_SIZE = 0.5
STABILITY = 10.0
PERTURBATION = 1.0  # prior standard deviations: large enough for a rounded confidence to move
STEP_DECAY, PERTURBATION_DECAY = 0.602, 0.101
# Perturbation pairs per step, asked in one batch and averaged: an API answers a batch of 10 in one request.
PAIRS_PER_STEP = 5
# A single step moves at most this far (whitened units): one unlucky noisy difference must not throw the search off.
MAX_STEP = 1.0
ZERO_CLIP_FRACTION = 0.25
COARSEST_STEP = 0.1
UNROUNDED_FLOOR = 1e-12
_SPREAD_FLOOR = 0.05  # times the mean spread: a feature that never varies must not dominate a distance


@dataclass(frozen=True, eq=False)
class InversionResult:
    """`reconstruction` (d,) the representative input recovered for `target_class`, on the grid; `queries` spent;
    `start` where the climb began (the prior's mean); `distance` the measurement, when held-out data was given."""

    target_class: int
    reconstruction: np.ndarray
    start: np.ndarray
    queries: int
    distance: InversionDistance | None


@dataclass(frozen=True)
class InversionDistance:
    """Distances in held-out spreads: `to_class_mean` of the reconstruction, `baseline` of the overall held-out
    mean, `start_ratio` the starting point's ratio; `ratio` = to_class_mean / baseline (< 1: the answers helped)."""

    to_class_mean: float
    baseline: float
    ratio: float
    start_ratio: float


def invert_class(
    oracle: Oracle,
    grid: InputGrid,
    *,
    target_class: int,
    n_classes: int,
    budget: int,
    prior_inputs: np.ndarray,
    heldout: Evaluation | None = None,
    pairs_per_step: int = PAIRS_PER_STEP,
    seed: int = 0,
) -> InversionResult:
    """Reconstruct a representative input of `target_class` within `budget` queries, from the attacker's own
    unlabelled natural inputs `prior_inputs` and the confidences `oracle` answers. `heldout` (held-out inputs with
    their own classes) measures the result; the attacker never reads it."""
    rng = np.random.default_rng(seed)
    prior = np.asarray(prior_inputs, dtype=np.float64)
    if prior.ndim != 2 or prior.shape[0] < 2:
        raise ValueError("the prior needs at least two natural inputs")
    mean = prior.mean(axis=0)
    covariance = np.atleast_2d(np.cov(prior, rowvar=False))
    covariance = (1 - PRIOR_SHRINKAGE) * covariance + PRIOR_SHRINKAGE * np.diag(np.diag(covariance))
    # The grid step as a floor: a feature constant in the prior still moves by at least a grid step per unit.
    covariance += np.diag(grid.step**2)
    whitening = np.linalg.cholesky(covariance)  # x = mean + L z
    metered = MeteredOracle(oracle, budget)
    shown: list[np.ndarray] = []
    z = np.zeros(grid.n_features)
    iterates: list[np.ndarray] = []

    def to_input(point: np.ndarray) -> np.ndarray:
        return grid.snap(mean + whitening @ point)

    def to_input_rows(points: np.ndarray) -> np.ndarray:
        return grid.snap(mean + points @ whitening.T)

    pairs = max(1, min(pairs_per_step, budget // 2))
    steps = budget // (2 * pairs)
    for k in range(steps):
        gain = STEP_SIZE / (k + 1 + STABILITY) ** STEP_DECAY
        width = PERTURBATION / (k + 1) ** PERTURBATION_DECAY
        delta = rng.choice((-1.0, 1.0), (pairs, grid.n_features))
        # One batch per step: every pair's two sides, averaged into one gradient estimate.
        batch = np.concatenate([to_input_rows(z + width * delta), to_input_rows(z - width * delta)])
        try:
            answers = metered(batch)
        except BudgetExhausted:
            break
        shown.append(answers.confidences if answers.probabilities is None else answers.probabilities.ravel())
        resolution = answer_resolution(np.concatenate(shown))
        log_p = _log_confidence(answers, target_class, n_classes, resolution)
        plus, minus = log_p[:pairs], log_p[pairs:]
        estimate = (((plus - minus) / (2 * width))[:, None] * delta).mean(axis=0)
        gradient = estimate - z  # the likelihood's estimate and the prior's exact gradient
        move = gain * gradient
        norm = float(np.linalg.norm(move))
        if norm > MAX_STEP:
            move *= MAX_STEP / norm
        # Keep the iterate inside the box: z of the clipped input.
        z = np.linalg.solve(whitening, np.clip(mean + whitening @ (z + move), grid.low, grid.high) - mean)
        if k >= steps // 2:
            iterates.append(z)
    final = np.mean(iterates, axis=0) if iterates else z
    reconstruction = to_input(final)
    start = grid.snap(mean)
    distance = None
    if heldout is not None:
        distance = inversion_distance(reconstruction, heldout, target_class=target_class, start=start)
    return InversionResult(target_class, reconstruction, start, metered.spent, distance)


def _log_confidence(answers: Answers, target_class: int, n_classes: int, resolution: float | None) -> np.ndarray:
    """log p(target | x) for every answered input, as far as the answers show it."""
    if answers.probabilities is not None:
        p = answers.probabilities[:, target_class].astype(np.float64)
    else:
        own = answers.labels == target_class
        others = (1.0 - answers.confidences) / (n_classes - 1)
        p = np.where(own, answers.confidences, others)
    floor = ZERO_CLIP_FRACTION * min(resolution, COARSEST_STEP) if resolution is not None else UNROUNDED_FLOOR
    return np.log(np.maximum(p, floor))


def inversion_distance(
    reconstruction: np.ndarray, heldout: Evaluation, *, target_class: int, start: np.ndarray | None = None
) -> InversionDistance:
    """How close `reconstruction` is to the held-out class mean, against the overall held-out mean (see the module
    docstring). Raises ValueError when the held-out data holds no row of the class."""
    inputs = np.asarray(heldout.inputs, dtype=np.float64)
    members = inputs[heldout.labels == target_class]
    if members.shape[0] == 0:
        raise ValueError(f"no held-out row of class {target_class}")
    spread = inputs.std(axis=0)
    spread = np.maximum(spread, _SPREAD_FLOOR * max(float(spread.mean()), 1e-12))
    class_mean, overall = members.mean(axis=0), inputs.mean(axis=0)

    def distance(x: np.ndarray) -> float:
        return float(np.linalg.norm((np.asarray(x, dtype=np.float64) - class_mean) / spread))

    baseline = distance(overall)
    to_class = distance(reconstruction)
    start_ratio = distance(start) / baseline if start is not None else 1.0
    return InversionDistance(to_class, baseline, to_class / baseline, start_ratio)
