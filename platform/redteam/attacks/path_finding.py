"""Path finding against a decision tree (Tramer et al., USENIX Security 2016, section 4.2, Algorithm 1).

A tree's answer depends only on the leaf an input reaches, and an API that shows confidences shows the leaf's class
distribution: distinct leaves give distinct answers, so the answer is a leaf *identity*. Each leaf is a box, an
intersection of thresholds on single features, so along any axis-parallel line the identity is piecewise constant
and a leaf occupies one interval of it. The attack:

1. ask one input; its identity is the first leaf;
2. for an unexplored leaf, take its representative input and, for every feature, partition the line through it
   along that feature: ask both ends, and bisect (on the grid) every segment whose two ends answer different
   identities until they are adjacent grid points; a segment whose ends agree is one leaf throughout (a box is
   convex). The leaf's interval on each line is its box's side;
3. every identity seen on the way that is new is a leaf to explore (its input is its representative); repeat.

Tramer et al.'s faster top-down variant needs queries with features left out, which this API refuses (every input
has every feature), so this is their complete-input algorithm, explored breadth first.

What the tiers change: rounding makes leaves with close class distributions answer alike (a leaf-identity
collision): the attack then takes two leaves for one, never bisects the threshold between them, and misses what
lies beyond. Keyed noise gives every input its own answer: every query looks like a new leaf, and the budget goes
on exploring single points. A top-1 answer identifies a leaf by its label and that label's confidence only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

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

Identity = tuple[float | int, ...]


@dataclass(frozen=True, eq=False)
class Leaf:
    """One recovered leaf: its `identity` (the answer it gives), its served `label`, the input it was found at and
    its box: grid codes `low` to `high` (d,), inclusive. A leaf the budget left unexplored is the single point it
    was seen at (`explored` False)."""

    identity: Identity
    label: int
    representative: np.ndarray
    low: np.ndarray
    high: np.ndarray
    explored: bool


@dataclass(frozen=True, eq=False)
class PathFindingResult:
    """`queries` spent; `leaves` one per distinct answer met (the leaves as the attacker counts them), explored
    ones first; `complete` whether every one was explored within the budget; `agreement` of the recovered tree
    with the true model on the evaluation inputs."""

    queries: int
    leaves: list[Leaf]
    complete: bool
    agreement: float
    resolution: float | None
    grid: InputGrid

    @property
    def identities_seen(self) -> int:
        return len(self.leaves)

    @property
    def leaves_explored(self) -> int:
        return sum(leaf.explored for leaf in self.leaves)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_leaves(self.leaves, self.grid, x)


def leaf_identities(answers: Answers) -> list[Identity]:
    """What identifies a leaf in an answer: the probability vector when the tier shows one, else (label,
    confidence)."""
    if answers.probabilities is not None:
        return [tuple(row) for row in answers.probabilities.tolist()]
    return list(zip(answers.labels.tolist(), answers.confidences.tolist(), strict=True))


def find_paths(
    oracle: Oracle,
    grid: InputGrid,
    *,
    budget: int,
    evaluation: Evaluation,
    start: np.ndarray | None = None,
    seed: int = 0,
) -> PathFindingResult:
    """Explore the tree behind `oracle` from `start` (an input; default a uniform draw) within `budget` answers.
    `evaluation` (the true model's labels on held-out inputs) measures the recovered boxes; the attacker never
    reads it."""
    rng = np.random.default_rng(seed)
    metered = MeteredOracle(oracle, budget)
    top = grid.top_code
    found: dict[Identity, tuple[np.ndarray, int]] = {}  # identity -> (representative codes, label)
    queue: deque[Identity] = deque()
    leaves: list[Leaf] = []
    shown: list[np.ndarray] = []

    def ask(codes: np.ndarray) -> list[Identity]:
        answers = metered(grid.values(codes))
        shown.append(answers.confidences if answers.probabilities is None else answers.probabilities.ravel())
        identities = leaf_identities(answers)
        for row, identity, label in zip(codes, identities, answers.labels.tolist(), strict=True):
            if identity not in found:
                found[identity] = (row.copy(), int(label))
                queue.append(identity)
        return identities

    complete = True
    try:
        first = grid.codes(grid.uniform(rng, 1) if start is None else np.atleast_2d(start))
        ask(first)
        while queue:
            identity = queue.popleft()
            representative, label = found[identity]
            low, high = _leaf_box(ask, representative, identity, top)
            leaves.append(Leaf(identity, label, grid.values(representative), low, high, explored=True))
    except BudgetExhausted:
        complete = False
    explored = {leaf.identity for leaf in leaves}
    for identity, (representative, label) in found.items():
        if identity not in explored:
            point = grid.values(representative)
            leaves.append(Leaf(identity, label, point, representative, representative, explored=False))
    return PathFindingResult(
        queries=metered.spent,
        leaves=leaves,
        complete=complete,
        agreement=evaluation.agreement(predict_leaves(leaves, grid, evaluation.inputs)) if leaves else 0.0,
        resolution=answer_resolution(np.concatenate(shown)) if shown else None,
        grid=grid,
    )


def _leaf_box(
    ask: Callable[[np.ndarray], list[Identity]], representative: np.ndarray, identity: Identity, top: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The box (codes low..high per feature) of the leaf answering `identity` at `representative`: every feature's
    line through it partitioned at once, one batch per bisection round."""
    d = representative.shape[0]
    # Known points per line: code -> identity. The representative's own code is known on every line.
    lines: list[dict[int, Identity]] = [{int(representative[i]): identity} for i in range(d)]
    pending = [(i, code) for i in range(d) for code in (0, int(top[i])) if code not in lines[i]]
    while pending:
        codes = np.repeat(representative[None, :], len(pending), axis=0)
        for row, (i, code) in enumerate(pending):
            codes[row, i] = code
        for (i, code), answered in zip(pending, ask(codes), strict=True):
            lines[i][code] = answered
        pending = []
        for i, line in enumerate(lines):
            positions = sorted(line)
            for lo, hi in pairwise(positions):
                if line[lo] != line[hi] and hi - lo > 1:
                    pending.append((i, (lo + hi) // 2))
    low, high = representative.copy(), representative.copy()
    for i, line in enumerate(lines):
        positions = sorted(line)
        at = positions.index(int(representative[i]))
        first = last = at
        while first > 0 and line[positions[first - 1]] == identity:
            first -= 1
        while last < len(positions) - 1 and line[positions[last + 1]] == identity:
            last += 1
        low[i], high[i] = positions[first], positions[last]
    return low, high


def predict_leaves(leaves: list[Leaf], grid: InputGrid, x: np.ndarray) -> np.ndarray:
    """The label of the box each input lies in (the first, if boxes overlap after a collision), else of the box
    nearest to it in unit-box distance (a leaf the budget left unexplored lies between known ones)."""
    if not leaves:
        raise ValueError("no leaf was recovered")
    codes = grid.codes(x).astype(np.float64)
    low = np.array([leaf.low for leaf in leaves], dtype=np.float64)
    high = np.array([leaf.high for leaf in leaves], dtype=np.float64)
    labels = np.array([leaf.label for leaf in leaves])
    scale = np.maximum(grid.top_code, 1).astype(np.float64)
    predicted = np.empty(codes.shape[0], dtype=np.int64)
    for start in range(0, codes.shape[0], 256):  # (rows, leaves, d) in slices: thousands of leaves under noise
        part = codes[start : start + 256, None, :]
        outside = (np.maximum(low - part, 0.0) + np.maximum(part - high, 0.0)) / scale
        distance = (outside**2).sum(axis=2)
        predicted[start : start + 256] = labels[distance.argmin(axis=1)]
    return predicted
