"""Equation solving against a logistic regression (Tramer et al., USENIX Security 2016, section 4.1).

The log-ratio of two class probabilities of a (multinomial) logistic regression is affine in the input:
`log p_s(x) - log p_r(x) = (w_s - w_r) . x + (b_s - b_r)`. Every answer that shows two probabilities is one linear
equation in the unknowns; with C - 1 free weight vectors of d + 1 numbers each, d + 1 linearly independent inputs
answered with exact probability vectors determine the model exactly. A binary model needs only the served label's
confidence: the other class's is its complement.

What the tiers withhold, and what the solver does about it:

- **Rounding** (`confidence_decimals`): a rounded probability gives an inexact equation, and one rounded to 0 or 1
  none at all (its logit is unbounded). The solver drops pairs in which a probability is 0 (or below
  `ZERO_PROBABILITY`, the serving floor of an underflowed probability), weights the others by how little a rounding
  error moves their log-ratio, and solves by least squares over all its answers. While too few equations survive to
  determine the model, the zeros are clipped to a quarter of the rounding step and used too: they are the only sign
  of the direction it has.
- **Where to ask next**: a rounded answer is informative only near the boundary (one decimal leaves the logit
  readable for p in [0.05, 0.95], |logit| < 3). After the first d + 1 queries the solver asks where its current
  fit predicts a logit difference drawn from [-3, 3], on segments that cross the boundary (`_boundary_queries`).
- **Top-1 answers** of a model with more than two classes show one probability per input: no equation. The solver
  spends its budget and reports that it never solved.

Exact answers are recognised by their fit: once more equations than unknowns fit to `EXACT_TOLERANCE`, the model is
verified and the solver stops. Otherwise it spends the budget, measuring its fit at checkpoints (d + 1, d + 2, then
doubling), and reports the first checkpoint whose agreement reached the target, or none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redteam.attacks.linear import LinearModel
from redteam.attacks.oracle import (
    Answers,
    BudgetExhausted,
    Evaluation,
    InputGrid,
    MeteredOracle,
    Oracle,
    answer_resolution,
)

TARGET_AGREEMENT = 0.99
# Probabilities at or below this are zeros: the serving path answers an underflowed probability as 1e-30, and no
# float32 model shows a smaller one truthfully.
ZERO_PROBABILITY = 1e-20
# Where a one-decimal answer is still unsaturated: p in [0.05, 0.95], |logit| < logit(0.95) = 2.94.
INFORMATIVE_LOGIT = 3.0
# Verification: equations whose smaller probability is at least INFORMATIVE_PROBABILITY fit to this (in logits).
# float32 probabilities (an ONNX graph's) carry about 7 digits; 1e-4 accepts them and no rounding to 6 decimals or
# fewer passes it.
EXACT_TOLERANCE = 1e-4
INFORMATIVE_PROBABILITY = 1e-3
# Equations are weighted by 1 / (1/p_s + 1/p_r) (a rounding error moves log p by about error / p), floored so that
# far-away answers still count a little and no weight makes the system numerically singular.
MIN_WEIGHT = 1e-4
# A zero is clipped to this fraction of the rounding step, when zeros must be used at all.
ZERO_CLIP_FRACTION = 0.25
# The first queries are the attacker's natural inputs drawn in towards their own mean, to this fraction of their
# distance: still affinely independent, but where a model of such data is least sure, so that its answers keep their
# digits (a typical tumour is answered 1 - 1e-9, a log-ratio float32 cannot show, and a rounded answer 1.0).
SEED_SPREAD = 0.25
COARSEST_STEP = 0.1


@dataclass(frozen=True)
class Checkpoint:
    queries: int
    equations: int  # usable equations among the answers so far
    agreement: float
    weight_error: float | None


@dataclass(frozen=True, eq=False)
class EquationSolvingResult:
    """`queries` spent; `model` the last fit (None when no equation was usable); `checkpoints` its measurement
    along the way; `queries_to_target` the first checkpoint whose agreement reached `target_agreement` (None: not
    within the budget); `verified_exact` whether the answers fit a linear model exactly (the solver then stopped);
    `resolution` the rounding step read off the answers (None: unrounded)."""

    queries: int
    model: LinearModel | None
    checkpoints: list[Checkpoint]
    queries_to_target: int | None
    target_agreement: float
    verified_exact: bool
    resolution: float | None

    @property
    def agreement(self) -> float:
        return self.checkpoints[-1].agreement if self.checkpoints else 0.0

    @property
    def weight_error(self) -> float | None:
        return self.checkpoints[-1].weight_error if self.checkpoints else None


def checkpoints(n_features: int, budget: int) -> list[int]:
    """d + 1 (the exact solution's size), d + 2 (its verification), then doubling from 2(d + 1), and the budget."""
    first = n_features + 1
    points = [first, first + 1]
    while points[-1] < budget:
        points.append(max(2 * points[-1] if len(points) > 2 else 2 * first, points[-1] + 1))
    return sorted({min(point, budget) for point in points})


def solve_equations(
    oracle: Oracle,
    grid: InputGrid,
    *,
    n_classes: int,
    budget: int,
    evaluation: Evaluation,
    truth: LinearModel | None = None,
    seeds: np.ndarray | None = None,
    target_agreement: float = TARGET_AGREEMENT,
    seed: int = 0,
) -> EquationSolvingResult:
    """Recover a logistic regression of `n_classes` classes from at most `budget` answers of `oracle`.

    The first d + 1 queries are the attacker's own natural inputs `seeds` when it has them, drawn in towards their
    mean (`SEED_SPREAD`: a model trained on data in a corner of a wide box answers uniform draws saturated, the
    breast-cancer demo's full model every one of them with probability 1.0 in float32, and its confident natural
    inputs nearly so), then uniform draws. `evaluation` (the true model's labels on
    held-out inputs) and `truth` (its parameters, for the weight error) measure the fit; the attacker never reads
    them."""
    if n_classes < 2:
        raise ValueError(f"a classifier has at least two classes, got {n_classes}")
    rng = np.random.default_rng(seed)
    metered = MeteredOracle(oracle, budget)
    seed_rows = np.zeros((0, grid.n_features)) if seeds is None else np.asarray(seeds, dtype=np.float64)
    if seed_rows.shape[0]:
        center = seed_rows.mean(axis=0)
        seed_rows = grid.snap(center + SEED_SPREAD * (seed_rows - center))
    seed_rows = seed_rows[rng.permutation(seed_rows.shape[0])]
    inputs: list[np.ndarray] = []
    answers: list[Answers] = []
    model: LinearModel | None = None
    measured: list[Checkpoint] = []
    verified = False
    resolution: float | None = None
    for point in checkpoints(grid.n_features, budget):
        count = point - metered.spent
        if count <= 0:
            continue
        if metered.spent < grid.n_features + 1:
            batch = _first_queries(rng, grid, seed_rows[metered.spent :], count)
        else:
            batch = _boundary_queries(rng, grid, np.concatenate(inputs), Answers.concatenate(answers), model, count)
        try:
            answered = metered(batch)
        except BudgetExhausted:
            break
        inputs.append(batch)
        answers.append(answered)
        X, A = np.concatenate(inputs), Answers.concatenate(answers)
        resolution = _resolution(A)
        fit = fit_linear(X, A, grid, n_classes=n_classes, resolution=resolution)
        model = fit.model if fit.model is not None else model
        measured.append(
            Checkpoint(
                queries=metered.spent,
                equations=fit.equations,
                agreement=evaluation.agreement(model.predict(evaluation.inputs)) if model is not None else 0.0,
                weight_error=model.relative_error(truth, grid) if model is not None and truth is not None else None,
            )
        )
        if fit.exact:
            verified = True
            break
    reached = next((c.queries for c in measured if c.agreement >= target_agreement), None)
    return EquationSolvingResult(
        queries=metered.spent,
        model=model,
        checkpoints=measured,
        queries_to_target=reached,
        target_agreement=target_agreement,
        verified_exact=verified,
        resolution=resolution,
    )


def _resolution(answers: Answers) -> float | None:
    shown = answers.confidences if answers.probabilities is None else answers.probabilities
    return answer_resolution(shown)


def _first_queries(rng: np.random.Generator, grid: InputGrid, seeds: np.ndarray, count: int) -> np.ndarray:
    own = seeds[:count]
    return np.concatenate([own, grid.uniform(rng, count - own.shape[0])]) if own.shape[0] < count else own


def _boundary_queries(
    rng: np.random.Generator,
    grid: InputGrid,
    X: np.ndarray,
    answers: Answers,
    model: LinearModel | None,
    count: int,
) -> np.ndarray:
    """`count` inputs where the current fit puts the logit difference of two classes at a value drawn from
    [-INFORMATIVE_LOGIT, INFORMATIVE_LOGIT]. Half on segments between answered inputs of different served labels
    (the true boundary crosses them, so a poor fit still asks near it: the segment's midpoint when the fit does not
    cross it there); half on segments between fresh uniform draws the fit labels differently, which spread over the
    whole boundary (answered inputs close in on one stretch of it, and least squares on points bunched there
    extrapolate poorly). Uniform draws while every answer has one label."""
    labels = answers.labels
    if np.unique(labels).size < 2:
        return grid.uniform(rng, count)
    spread = np.zeros((0, grid.n_features))
    if model is not None:
        a, b = grid.to_unit(grid.uniform(rng, 8 * count)), grid.to_unit(grid.uniform(rng, 8 * count))
        unit = _unit_model(model, grid)
        la, lb = unit.predict(a), unit.predict(b)
        differ = la != lb
        position, crossing = _positions(rng, unit, a[differ], b[differ], la[differ], lb[differ])
        keep = np.flatnonzero(crossing)[: count // 2]
        spread = grid.from_unit(a[differ][keep] + position[keep, None] * (b[differ][keep] - a[differ][keep]))
    wanted = count - spread.shape[0]
    first = rng.integers(0, X.shape[0], 4 * wanted)
    second = rng.integers(0, X.shape[0], 4 * wanted)
    differ = labels[first] != labels[second]
    first, second = first[differ][:wanted], second[differ][:wanted]
    while first.shape[0] < wanted:  # rare: few answers of a minority label; draw pairs across labels directly
        i = int(rng.integers(X.shape[0]))
        others = np.flatnonzero(labels != labels[i])
        first = np.append(first, i)
        second = np.append(second, others[int(rng.integers(others.size))])
    a, b = grid.to_unit(X[first]), grid.to_unit(X[second])
    position = np.full(wanted, 0.5)
    if model is not None:
        found, crossing = _positions(rng, _unit_model(model, grid), a, b, labels[first], labels[second])
        position = np.where(crossing, found, 0.5)
    labelled = grid.from_unit(a + position[:, None] * (b - a))
    return grid.snap(np.concatenate([spread, labelled]))


def _unit_model(model: LinearModel, grid: InputGrid) -> LinearModel:
    """The same model on unit-box inputs."""
    return LinearModel(model.weights * grid.width, model.bias + model.weights @ grid.low)


def _positions(
    rng: np.random.Generator, unit: LinearModel, a: np.ndarray, b: np.ndarray, la: np.ndarray, lb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where on each segment a -> b the fit's z_lb - z_la (linear along it) equals a target drawn from the
    informative range, and whether that point lies strictly inside the segment."""
    rows = np.arange(a.shape[0])
    za, zb = unit.logits(a), unit.logits(b)
    ga, gb = za[rows, lb] - za[rows, la], zb[rows, lb] - zb[rows, la]
    target = rng.uniform(-INFORMATIVE_LOGIT, INFORMATIVE_LOGIT, a.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (target - ga) / (gb - ga)
    return np.where(np.isfinite(t), t, 0.5), np.isfinite(t) & (t > 0) & (t < 1)


@dataclass(frozen=True, eq=False)
class LinearFit:
    model: LinearModel | None
    equations: int
    exact: bool


def fit_linear(
    X: np.ndarray, answers: Answers, grid: InputGrid, *, n_classes: int, resolution: float | None
) -> LinearFit:
    """The weighted least-squares linear model of the log-ratios the answers show (see the module docstring)."""
    d = grid.n_features
    unknowns = (n_classes - 1) * (d + 1)
    shown = _shown_probabilities(answers, n_classes)
    known = np.isfinite(shown)
    zero = known & (shown <= ZERO_PROBABILITY)
    usable = known & ~zero
    design, target, weight, informative = _equations(grid.to_unit(X), shown, usable, n_classes)
    determined = design.shape[0] > 0 and np.linalg.matrix_rank(design) == unknowns
    if not determined:
        # Too few unsaturated answers to determine the model: use the zeros too, clipped to the rounding's reach.
        step = min(resolution if resolution is not None else COARSEST_STEP, COARSEST_STEP)
        clipped = np.where(zero, ZERO_CLIP_FRACTION * step, shown)  # log-ratios need no renormalising
        design, target, weight, informative = _equations(grid.to_unit(X), clipped, known, n_classes)
    equations = int(design.shape[0])
    if equations == 0:
        return LinearFit(None, 0, False)
    theta, *_ = np.linalg.lstsq(design * weight[:, None], target * weight, rcond=None)
    theta = theta.reshape(n_classes - 1, d + 1)
    residual = np.abs(design @ theta.ravel() - target)
    exact = (
        determined  # clipped zeros are guesses: a fit to them verifies nothing
        and resolution is None
        and int(informative.sum()) > unknowns
        and np.linalg.matrix_rank(design[informative]) == unknowns
        and float(residual[informative].max()) < EXACT_TOLERANCE
    )
    # Back from unit-box coordinates to raw units: w_raw = w_unit / width, b_raw = b_unit - w_raw . low.
    weights = theta[:, :d] / grid.width
    return LinearFit(LinearModel(weights, theta[:, d] - weights @ grid.low), equations, bool(exact))


def _shown_probabilities(answers: Answers, n_classes: int) -> np.ndarray:
    """(n, C) probabilities the answers show, NaN where they show none. A binary top-1 answer shows both."""
    if answers.probabilities is not None:
        return np.asarray(answers.probabilities, dtype=np.float64)
    n = len(answers)
    shown = np.full((n, n_classes), np.nan)
    rows = np.arange(n)
    shown[rows, answers.labels] = answers.confidences
    if n_classes == 2:
        shown[rows, 1 - answers.labels] = 1.0 - answers.confidences
    return shown


def _equations(
    unit_inputs: np.ndarray, shown: np.ndarray, usable: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One equation per usable class s of a row other than the row's reference r (its first usable class):
    `(theta_s - theta_r) . [u, 1] = log p_s - log p_r`, with theta_0 = 0. Returns the design matrix
    (m, (C - 1)(d + 1)), the targets, the weights and which equations are informative (both p >= 1e-3)."""
    n, d = unit_inputs.shape
    extended = np.concatenate([unit_inputs, np.ones((n, 1))], axis=1)
    has_reference = usable.any(axis=1)
    reference = np.argmax(usable, axis=1)
    log_p = np.log(np.where(usable, shown, 1.0))
    blocks, targets, weights, informative = [], [], [], []
    rows = np.arange(n)
    for s in range(n_classes):
        mask = usable[:, s] & has_reference & (reference != s)
        if not mask.any():
            continue
        index = rows[mask]
        r = reference[index]
        coefficients = np.zeros((index.size, n_classes, d + 1))
        coefficients[:, s] = extended[index]
        coefficients[np.arange(index.size), r] -= extended[index]
        blocks.append(coefficients[:, 1:].reshape(index.size, -1))  # theta_0 is fixed at 0
        targets.append(log_p[index, s] - log_p[index, r])
        p_s, p_r = shown[index, s], shown[index, r]
        weights.append(np.maximum(1.0 / (1.0 / p_s + 1.0 / p_r), MIN_WEIGHT))
        informative.append(np.minimum(p_s, p_r) >= INFORMATIVE_PROBABILITY)
    if not blocks:
        empty = np.zeros(0)
        return np.zeros((0, (n_classes - 1) * (d + 1))), empty, empty, empty.astype(bool)
    return np.concatenate(blocks), np.concatenate(targets), np.concatenate(weights), np.concatenate(informative)
