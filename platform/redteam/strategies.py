"""How a red-team campaign chooses its queries: one object per campaign, asked for the next batch and told the
answers. Pure numpy, deterministic for a seed; the inputs are the digits model's canonical rows (n, 64) of integers
0..16.

- `UniformRandom`: every pixel uniform in 0..16, the cheapest query set (Tramer et al. 2016).
- `NaturalData`: the attacker's own natural digits (the public pool), in a seeded order, then augmented copies of
  them (`augment_digits`: a one-pixel shift now and then, stroke weight and a little noise), as a Knockoff-style
  thief would. It knows the domain as well as the owner does: its variants are the ones the owner trains on.
- `AdaptiveBoundary`: Tramer et al.'s adaptive retraining: a first round of uniform queries, then rounds of points
  on the decision boundary of the attacker's working copy (retrained each round), found by a line search between
  random points the copy labels differently; the search runs on the copy, so it costs no queries.
- `PerturbationWalk`: a gradient-free Jacobian-augmentation walk (Papernot et al. 2017) from one public digit: small
  steps, kept when the answer's confidence did not rise, as in `abuse.simulation`'s perturbation walker.

The strategies in `abuse.simulation` start from the held-out digits that measure the copies; these draw only on
the pool the attacker owns, so the measurement stays honest.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from abuse.simulation import walk_one_step
from redteam.copies import SOFT, WORKING_RECIPE, predict_labels, soft_targets, train_copy
from serving.ml.digits import DIGITS_CLASSES, DIGITS_FEATURES, DIGITS_MAX, augment_digits

# The campaigns are the digits model's (issue "Detection, freezing and the red team for every served model" makes
# them schema-driven): its pixels, their intensities and its classes.
PIXEL_MAX = DIGITS_MAX
N_FEATURES = DIGITS_FEATURES
N_CLASSES = DIGITS_CLASSES


class Strategy(Protocol):
    def next_batch(self, size: int) -> np.ndarray: ...

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None: ...


def _canonical(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), 0, PIXEL_MAX).astype(np.uint8)


class UniformRandom:
    def __init__(self, *, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def next_batch(self, size: int) -> np.ndarray:
        return self.rng.integers(0, PIXEL_MAX + 1, (size, N_FEATURES), dtype=np.uint8)

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        return None


class NaturalData:
    """The pool in a seeded order, then augmented pool rows. One instance can feed several accounts (a sybil ring
    splits one actor's data, so no input is sent twice)."""

    def __init__(self, pool: np.ndarray, *, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.pool = _canonical(pool)[self.rng.permutation(pool.shape[0])]
        self.next = 0

    def next_batch(self, size: int) -> np.ndarray:
        taken = self.pool[self.next : self.next + size]
        self.next += taken.shape[0]
        if taken.shape[0] < size:
            extra = self.pool[self.rng.integers(0, self.pool.shape[0], size - taken.shape[0])]
            taken = np.concatenate([taken, augment_digits(extra, self.rng)])
        return taken

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        return None


class AdaptiveBoundary:
    """Rounds of queries: `first_round` uniform inputs, then each round `max(round_size, 10% of the answers)`
    points on the working copy's boundary (bisection between uniform points it labels differently, `steps`
    halvings), the copy retrained on every answer before each round."""

    def __init__(self, *, seed: int, first_round: int = 100, round_size: int = 100, steps: int = 10) -> None:
        self.rng = np.random.default_rng(seed)
        self.first_round, self.round_size, self.steps = first_round, round_size, steps
        self.queue = self.rng.integers(0, PIXEL_MAX + 1, (first_round, N_FEATURES)).astype(np.uint8)
        self.inputs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.confidences: list[np.ndarray] = []
        self.rounds = 0

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        self.inputs.append(np.asarray(inputs, dtype=np.uint8))
        self.labels.append(np.asarray(labels, dtype=np.int64))
        self.confidences.append(np.asarray(confidences, dtype=np.float64))

    def _boundary_points(self, count: int) -> np.ndarray:
        X = np.concatenate(self.inputs)
        targets = soft_targets(np.concatenate(self.labels), np.concatenate(self.confidences), n_classes=N_CLASSES)
        copy = train_copy(X, targets, kind=SOFT, recipe=WORKING_RECIPE, bounds=(0.0, PIXEL_MAX), seed=self.rounds)
        found: list[np.ndarray] = []
        while sum(part.shape[0] for part in found) < count:
            a = self.rng.integers(0, PIXEL_MAX + 1, (4 * count, N_FEATURES)).astype(np.float64)
            b = self.rng.integers(0, PIXEL_MAX + 1, (4 * count, N_FEATURES)).astype(np.float64)
            label_a, label_b = predict_labels(copy, a), predict_labels(copy, b)
            differ = label_a != label_b
            a, b, label_a = a[differ], b[differ], label_a[differ]
            lo, hi = np.zeros(a.shape[0]), np.ones(a.shape[0])
            for _ in range(self.steps):
                middle = (lo + hi) / 2
                same = predict_labels(copy, a + middle[:, None] * (b - a)) == label_a
                lo, hi = np.where(same, middle, lo), np.where(same, hi, middle)
            found.append(_canonical(a + ((lo + hi) / 2)[:, None] * (b - a)))
            if not differ.any():  # a copy that answers one class everywhere has no boundary to find
                found.append(self.rng.integers(0, PIXEL_MAX + 1, (count, N_FEATURES)).astype(np.uint8))
        return np.concatenate(found)[:count]

    def next_batch(self, size: int) -> np.ndarray:
        while self.queue.shape[0] < size:
            answered = sum(part.shape[0] for part in self.inputs)
            if answered == 0:  # the first round is still out: nothing to train on yet
                more = self.rng.integers(0, PIXEL_MAX + 1, (size, N_FEATURES)).astype(np.uint8)
            else:
                self.rounds += 1
                more = self._boundary_points(max(self.round_size, answered // 10, size))
            self.queue = np.concatenate([self.queue, more])
        batch, self.queue = self.queue[:size], self.queue[size:]
        return batch


class PerturbationWalk:
    """Parallel chains from one public digit; each query moves 1..3 pixels of its chain's image by 1..3 levels, and
    the chain moves on to it when the confidence did not rise. Never the same input twice."""

    def __init__(self, pool: np.ndarray, *, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.start = _canonical(pool[int(self.rng.integers(pool.shape[0]))]).astype(np.int16)
        self.current: np.ndarray | None = None
        self.current_confidence: np.ndarray | None = None
        self.last: np.ndarray | None = None
        self.sent: set[bytes] = set()

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        if self.current is None or self.last is None or inputs.shape[0] != self.current.shape[0]:
            return
        confidence = np.asarray(confidences, dtype=np.float64)
        moved = confidence <= self.current_confidence
        self.current[moved] = self.last[moved]
        self.current_confidence[moved] = confidence[moved]

    def next_batch(self, size: int) -> np.ndarray:
        if self.current is None or self.current.shape[0] != size:
            self.current = np.repeat(self.start[None, :], size, axis=0)
            self.current_confidence = np.full(size, np.inf)
        self.last = walk_one_step(self.rng, self.current, sent=self.sent)
        return self.last.copy()
