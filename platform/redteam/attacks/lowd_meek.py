"""Lowd and Meek's line search for a binary linear boundary, from labels alone (Lowd & Meek, "Adversarial
learning", KDD 2005; the label-only baseline of Tramer et al. 2016, section 6).

A linear classifier's boundary is a hyperplane; any segment between two inputs it labels differently crosses it
once, and a binary search on the segment (one label per query) finds the crossing to within a grid step. The attack:

1. ask a few inputs (the attacker's own natural inputs, else uniform draws) until both labels are seen;
2. bisect segments between random pairs of opposite labels, all at once (one batch per round), until each
   bracket's ends are adjacent grid points: base boundary points;
3. Lowd and Meek's step: move each base point's segment along one feature at a time (by a tenth of that feature's
   spread in the inputs asked so far) and bisect it again. Where the boundary moved along the segment measures that
   feature's weight against the others; together, the points spread along every feature, however correlated the
   natural inputs are (the breast-cancer demo's radius, perimeter and area move together, and boundary points found
   between natural inputs alone leave the hyperplane undetermined in those directions);
4. fit the hyperplane to all boundary points in unit-box coordinates (its normal is the direction in which they do
   not spread), robustly: a watermark answer's false label puts a "boundary" where there is none.

Labels are what every tier answers, and the tiers' noise never changes one (`apply_defenses` puts the model's own
label back on top); only the watermark's regions answer a wrong label, and only in a small fraction of the input
space. This is the attack the output defenses do not reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from redteam.attacks.linear import LinearModel
from redteam.attacks.oracle import BudgetExhausted, Evaluation, InputGrid, MeteredOracle, Oracle

# Base boundary points; each is then moved along every feature, so about BASE_POINTS * (d + 1) points in all.
BASE_POINTS = 3
# How far a base segment moves along a feature: this fraction of the feature's spread in the inputs asked so far.
SHIFT = 0.3
PROBE_BATCH = 20
# The robust fit (see `_fit_hyperplane`): Tukey's biweight constant (95% efficiency on clean points), iterations.
TUKEY_C = 4.685
IRLS_ITERATIONS = 20


@dataclass(frozen=True, eq=False)
class LowdMeekResult:
    """`queries` spent (`probe_queries` of them labelling the first inputs); `boundary_points` found; `outliers`
    of them left out of the fit; `model` the recovered boundary as a binary linear model (its scale is arbitrary:
    labels carry none), None when fewer than d boundary points were found; `agreement` of its labels with the true
    model's on the evaluation inputs."""

    queries: int
    probe_queries: int
    boundary_points: np.ndarray
    outliers: int
    model: LinearModel | None
    agreement: float


def lowd_meek(
    oracle: Oracle,
    grid: InputGrid,
    *,
    budget: int,
    evaluation: Evaluation,
    positive_class: int = 1,
    seeds: np.ndarray | None = None,
    base_points: int = BASE_POINTS,
    seed: int = 0,
) -> LowdMeekResult:
    """Find the boundary between `positive_class` and the rest from the labels `oracle` answers, within `budget`
    queries; `seeds` are the attacker's own inputs to start from. `evaluation` (the true model's labels on held-out
    inputs) measures the result; the attacker never reads it."""
    rng = np.random.default_rng(seed)
    d = grid.n_features
    metered = MeteredOracle(oracle, budget)
    pool = np.zeros((0, d)) if seeds is None else grid.snap(seeds)[rng.permutation(len(seeds))]
    probed: list[np.ndarray] = []
    positive: list[np.ndarray] = []
    found: list[np.ndarray] = []
    family: list[int] = []  # the base point each boundary point was found from
    probe_queries = 0
    try:
        # 1. Label inputs until both sides are seen.
        while not _both_labels(positive):
            count = min(PROBE_BATCH, metered.remaining)
            own, pool = pool[:count], pool[count:]
            batch = own if own.shape[0] == count else np.concatenate([own, grid.uniform(rng, count - own.shape[0])])
            positive.append(metered(batch).labels == positive_class)
            probed.append(batch)
        probe_queries = metered.spent
        # 2. Base boundary points, on segments between random pairs of opposite labels.
        X, sides = np.concatenate(probed), np.concatenate(positive)
        inside, outside = np.flatnonzero(sides), np.flatnonzero(~sides)
        a = X[rng.choice(inside, base_points, replace=inside.size < base_points)]
        b = X[rng.choice(outside, base_points, replace=outside.size < base_points)]
        base = _bisect(metered, grid, a, b, positive_class)
        found.extend(base)
        family.extend(range(base_points))
        # 3. Every base segment moved along each feature in turn, inward from the box's edge.
        spread = np.maximum(SHIFT * X.std(axis=0), grid.step)
        shifted_a, shifted_b, of = [], [], []
        for k in range(base_points):
            for i in range(d):
                shift = np.zeros(d)
                shift[i] = spread[i] if base[k][i] + spread[i] <= grid.high[i] else -spread[i]
                shifted_a.append(a[k] + shift)
                shifted_b.append(b[k] + shift)
                of.append(k)
        a2, b2 = grid.snap(np.array(shifted_a)), grid.snap(np.array(shifted_b))
        ends = metered(np.concatenate([a2, b2])).labels == positive_class
        crossing = ends[: a2.shape[0]] != ends[a2.shape[0] :]
        # Orient every segment from its positive end.
        flip = crossing & ~ends[: a2.shape[0]]
        a2[flip], b2[flip] = b2[flip], a2[flip].copy()
        family.extend(np.array(of)[crossing].tolist())
        found.extend(_bisect(metered, grid, a2[crossing], b2[crossing], positive_class))
    except BudgetExhausted:
        if not probe_queries:  # the budget ran out before both labels were seen
            probe_queries = metered.spent
    points = np.array(found) if found else np.zeros((0, d))
    families = np.array(family[: points.shape[0]], dtype=np.int64)
    model, outliers, agreement = None, 0, 0.0
    if points.shape[0] >= d:
        model, outliers = _fit_hyperplane(grid, points, families, np.concatenate(probed), np.concatenate(positive))
        predicted_positive = model.predict(evaluation.inputs) == 1
        agreement = float(np.mean(predicted_positive == (evaluation.labels == positive_class)))
    return LowdMeekResult(
        queries=metered.spent,
        probe_queries=probe_queries,
        boundary_points=points,
        outliers=outliers,
        model=model,
        agreement=agreement,
    )


def _both_labels(positive: list[np.ndarray]) -> bool:
    sides = np.concatenate(positive) if positive else np.zeros(0, dtype=bool)
    return bool(sides.any() and not sides.all())


def _bisect(
    metered: MeteredOracle, grid: InputGrid, a: np.ndarray, b: np.ndarray, positive_class: int
) -> list[np.ndarray]:
    """Boundary points on segments from positive inputs `a` to negative inputs `b`: each round asks every
    segment's snapped midpoint; the bracket [lo, hi] keeps a positive answer at lo and a negative one at hi. Ends
    when every bracket's snapped ends are at most one grid step apart per feature. A round the budget cannot pay
    for ends the search with what the brackets hold."""
    if a.shape[0] == 0:
        return []
    lo, hi = np.zeros(a.shape[0]), np.ones(a.shape[0])
    steps = np.abs(grid.codes(b) - grid.codes(a)).max(axis=1)
    rounds = math.ceil(math.log2(max(int(steps.max()), 1))) + 1
    try:
        for _ in range(rounds):
            middle = (lo + hi) / 2
            low_codes, high_codes = grid.codes(a + lo[:, None] * (b - a)), grid.codes(a + hi[:, None] * (b - a))
            active = np.abs(high_codes - low_codes).max(axis=1) > 1
            if not active.any():
                break
            points = grid.snap(a[active] + middle[active, None] * (b[active] - a[active]))
            is_positive = metered(points).labels == positive_class
            index = np.flatnonzero(active)
            lo[index] = np.where(is_positive, middle[index], lo[index])
            hi[index] = np.where(is_positive, hi[index], middle[index])
    except BudgetExhausted:
        pass
    low_end = grid.snap(a + lo[:, None] * (b - a))
    high_end = grid.snap(a + hi[:, None] * (b - a))
    return list((low_end + high_end) / 2)


def _fit_hyperplane(
    grid: InputGrid, points: np.ndarray, families: np.ndarray, labelled: np.ndarray, positive: np.ndarray
) -> tuple[LinearModel, int]:
    """The hyperplane through the boundary points, in unit-box coordinates, robust to false ones.

    A watermark answer's false label ends a bisection on its region's edge, anywhere. Random d-point samples
    (RANSAC, least median of squares) are no way out here: natural inputs are clustered and correlated, and planes
    through d of them fit many others by accident. So the fit is iteratively reweighted least squares with Tukey's
    biweight (points beyond 4.685 robust deviations weigh nothing), started from the plane of all points and from
    each family's (a base point and its moves along every feature, which spread in every direction); of the fits,
    the one with the least median distance to the points wins. Points it gives no weight are outliers."""
    unit = grid.to_unit(points)
    d = grid.n_features
    floor = float(np.linalg.norm(grid.step / grid.width))  # a true point may be off a grid step in every feature
    starts = [_plane(unit)]
    starts += [_plane(unit[families == k]) for k in np.unique(families) if (families == k).sum() >= d]
    best: tuple[float, np.ndarray, float, np.ndarray] | None = None
    for normal, offset in starts:
        weight = np.ones(unit.shape[0])
        for _ in range(IRLS_ITERATIONS):
            residual = unit @ normal + offset
            deviation = max(1.4826 * float(np.median(np.abs(residual))), floor)
            scaled = residual / (TUKEY_C * deviation)
            weight = np.where(np.abs(scaled) < 1, (1 - scaled**2) ** 2, 0.0)
            if weight.sum() == 0 or (weight > 0).sum() < d:
                break
            normal, offset = _plane(unit, weight)
        score = float(np.median(np.abs(unit @ normal + offset)))
        if best is None or score < best[0]:
            best = (score, normal, offset, weight)
    _, normal, offset, weight = best
    # Orient the normal towards the positive side, by the labels already paid for.
    side = grid.to_unit(labelled) @ normal + offset > 0
    if np.mean(side == positive) < 0.5:
        normal, offset = -normal, -offset
    weights = normal / grid.width
    return LinearModel(weights[None, :], np.array([offset - weights @ grid.low])), int((weight == 0).sum())


def _plane(unit_points: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The (weighted) least-squares plane: unit normal, offset."""
    weight = np.ones(unit_points.shape[0]) if weight is None else weight
    centre = weight @ unit_points / weight.sum()
    _, _, vt = np.linalg.svd((unit_points - centre) * np.sqrt(weight)[:, None], full_matrices=True)
    normal = vt[-1]
    return normal, float(-centre @ normal)
