"""How a red-team campaign chooses its queries: one object per campaign, asked for the next batch and told the
answers. Pure numpy, deterministic for a seed. Every strategy works in the attacked model's own units, from the
input schema `GET /v1/models` publishes: its rows are canonical codes of that schema ((n, d) grid indices, the
schema's `code_dtype`; for the digits demo, pixel levels 0..16), which the campaign sends as the schema's values.

- `UniformRandom`: every feature uniform over its grid, the cheapest query set (Tramer et al. 2016).
- `NaturalData`: the attacker's own natural inputs (its public pool), in a seeded order, then natural variants of
  them (`abuse.simulation.natural_variation`, learnt from the pool alone: an image shifted, its strokes lighter or
  heavier; a table row drawn from a kernel density of the pool), as a Knockoff-style thief would.
- `AdaptiveBoundary`: Tramer et al.'s adaptive retraining: a first round of uniform queries, then rounds of points
  on the decision boundary of the attacker's working copy (retrained each round), found by a line search between
  random points the copy labels differently; the search runs on the copy, so it costs no queries.
- `PerturbationWalk`: a gradient-free Jacobian-augmentation walk (Papernot et al. 2017) from one natural input:
  small steps (a sixteenth of a feature's spread in the pool, at least one grid step), kept when the answer's
  confidence did not rise, as in `abuse.simulation`'s perturbation walker.

The strategies in `abuse.simulation` start from the held-out rows that measure the copies; these draw only on the
pool the attacker owns, so the measurement stays honest.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from abuse.simulation import natural_variation, small_steps, walk_one_step
from redteam.copies import SOFT, WORKING_RECIPE, predict_labels, soft_targets, train_copy
from serving.input_schema import InputSchema


class Strategy(Protocol):
    def next_batch(self, size: int) -> np.ndarray: ...

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None: ...


def _uniform(rng: np.random.Generator, schema: InputSchema, size: int) -> np.ndarray:
    top = np.broadcast_to(np.asarray(schema.top_code, dtype=np.int64), (schema.n_features,))
    return rng.integers(0, top + 1, (size, schema.n_features)).astype(schema.code_dtype)


class UniformRandom:
    def __init__(self, schema: InputSchema, *, seed: int) -> None:
        self.schema = schema
        self.rng = np.random.default_rng(seed)

    def next_batch(self, size: int) -> np.ndarray:
        return _uniform(self.rng, self.schema, size)

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        return None


class NaturalData:
    """The pool (codes) in a seeded order, then natural variants of pool rows, each new: a variant that rounds to
    an input already sent is drawn again (a rational thief never pays twice for one answer). One instance can feed
    several accounts (a sybil ring splits one actor's data, so no input is sent twice)."""

    # Draws of a variant before a repeat is let through (a pool too small to vary any further).
    TRIES = 8

    def __init__(self, schema: InputSchema, pool: np.ndarray, *, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        pool = schema.check_codes(pool)
        self.pool = pool[self.rng.permutation(pool.shape[0])]
        self.vary = natural_variation(schema, pool)
        self.sent = {row.tobytes() for row in self.pool}
        self.next = 0

    def _new_variants(self, count: int) -> np.ndarray:
        out = self.vary(self.rng, self.pool[self.rng.integers(0, self.pool.shape[0], count)])
        for _ in range(self.TRIES):
            repeated = np.array([row.tobytes() in self.sent for row in out], dtype=bool)
            if not repeated.any():
                break
            originals = self.pool[self.rng.integers(0, self.pool.shape[0], int(repeated.sum()))]
            out[repeated] = self.vary(self.rng, originals)
        self.sent.update(row.tobytes() for row in out)
        return out

    def next_batch(self, size: int) -> np.ndarray:
        taken = self.pool[self.next : self.next + size]
        self.next += taken.shape[0]
        if taken.shape[0] < size:
            taken = np.concatenate([taken, self._new_variants(size - taken.shape[0])])
        return taken

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        return None


class AdaptiveBoundary:
    """Rounds of queries: `first_round` uniform inputs, then each round `max(round_size, 10% of the answers)`
    points on the working copy's boundary (bisection between uniform points it labels differently, `steps`
    halvings), the copy retrained on every answer before each round. The copy learns from the schema's values
    within its published bounds, as any client can."""

    def __init__(
        self,
        schema: InputSchema,
        *,
        n_classes: int,
        seed: int,
        first_round: int = 100,
        round_size: int = 100,
        steps: int = 10,
    ) -> None:
        self.schema, self.n_classes = schema, n_classes
        self.rng = np.random.default_rng(seed)
        self.first_round, self.round_size, self.steps = first_round, round_size, steps
        self.queue = _uniform(self.rng, schema, first_round)
        self.inputs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.confidences: list[np.ndarray] = []
        self.rounds = 0

    def observe(self, inputs: np.ndarray, labels: np.ndarray, confidences: np.ndarray) -> None:
        self.inputs.append(np.asarray(inputs))
        self.labels.append(np.asarray(labels, dtype=np.int64))
        self.confidences.append(np.asarray(confidences, dtype=np.float64))

    def _boundary_points(self, count: int) -> np.ndarray:
        schema = self.schema
        X = schema.values(np.concatenate(self.inputs))
        targets = soft_targets(np.concatenate(self.labels), np.concatenate(self.confidences), n_classes=self.n_classes)
        copy = train_copy(
            X, targets, kind=SOFT, recipe=WORKING_RECIPE, bounds=(schema.low, schema.high), seed=self.rounds
        )
        found: list[np.ndarray] = []
        while sum(part.shape[0] for part in found) < count:
            a = schema.values(_uniform(self.rng, schema, 4 * count))
            b = schema.values(_uniform(self.rng, schema, 4 * count))
            label_a, label_b = predict_labels(copy, a), predict_labels(copy, b)
            differ = label_a != label_b
            a, b, label_a = a[differ], b[differ], label_a[differ]
            lo, hi = np.zeros(a.shape[0]), np.ones(a.shape[0])
            for _ in range(self.steps):
                middle = (lo + hi) / 2
                same = predict_labels(copy, a + middle[:, None] * (b - a)) == label_a
                lo, hi = np.where(same, middle, lo), np.where(same, hi, middle)
            found.append(schema.codes(a + ((lo + hi) / 2)[:, None] * (b - a)))
            if not differ.any():  # a copy that answers one class everywhere has no boundary to find
                found.append(_uniform(self.rng, schema, count))
        return np.concatenate(found)[:count]

    def next_batch(self, size: int) -> np.ndarray:
        while self.queue.shape[0] < size:
            answered = sum(part.shape[0] for part in self.inputs)
            if answered == 0:  # the first round is still out: nothing to train on yet
                more = _uniform(self.rng, self.schema, size)
            else:
                self.rounds += 1
                more = self._boundary_points(max(self.round_size, answered // 10, size))
            self.queue = np.concatenate([self.queue, more])
        batch, self.queue = self.queue[:size], self.queue[size:]
        return batch


class PerturbationWalk:
    """Parallel chains from one natural input of the pool; each query moves 1..3 features of its chain's input by
    1..3 small units, and the chain moves on to it when the confidence did not rise. Never the same input twice."""

    def __init__(self, schema: InputSchema, pool: np.ndarray, *, seed: int) -> None:
        self.schema = schema
        self.rng = np.random.default_rng(seed)
        pool = schema.check_codes(pool)
        self.start = pool[int(self.rng.integers(pool.shape[0]))].astype(np.int64)
        self.unit = small_steps(pool)
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
        self.last = walk_one_step(
            self.rng, self.current, sent=self.sent, top_code=self.schema.top_code, unit=self.unit,
            dtype=self.schema.code_dtype,
        )  # fmt: skip
        return self.last.copy()
