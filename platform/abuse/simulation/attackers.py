"""Extraction attackers at their tier's full pace: uniform random inputs, boundary probing, perturbation walks,
natural-data retraining, reconnaissance first, and sybil rings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from abuse.simulation.pace import Strategy, run_attack, tier_pace
from abuse.simulation.served import RECON_ERRORS, SimulatedCall, demo_model, digits_split, error_call, natural_digits
from serving.ml.digits import DIGITS_FEATURES, DIGITS_MAX
from serving.ml.mlp import MLPWeights

# --- Attackers --------------------------------------------------------------------------------------------------


def _uniform_strategy(rng: np.random.Generator, size: int, _previous: object) -> np.ndarray:
    return rng.integers(0, DIGITS_MAX + 1, (size, DIGITS_FEATURES), dtype=np.uint8)


def uniform_random_attacker(
    *, seed: int, queries: int, tier: str = "free", model: MLPWeights | None = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Uniformly random images (every pixel 0..16), the cheapest extraction query set (Tramèr et al. 2016)."""
    return run_attack(
        _uniform_strategy,
        rng=np.random.default_rng(seed),
        queries=queries,
        tier=tier_pace(tier),
        model=model if model is not None else demo_model(),
        start_at=start_at,
    )


@dataclass
class _LineSearch:
    """A bisection of the segment from digit `a` (class `label_a`) to digit `b` on the served label: the boundary
    lies between `lo` and `hi` (fractions of the way from a to b)."""

    a: np.ndarray
    b: np.ndarray
    label_a: str
    lo: float = 0.0
    hi: float = 1.0
    steps_left: int = 6

    def point(self) -> np.ndarray:
        middle = (self.lo + self.hi) / 2
        return (1 - middle) * self.a + middle * self.b

    def learn(self, label: str) -> None:
        middle = (self.lo + self.hi) / 2
        if label == self.label_a:
            self.lo = middle
        else:
            self.hi = middle
        self.steps_left -= 1


class _BoundaryProbe:
    """Line searches between natural digits of different classes (one per batch slot), so the queries close in on
    the decision boundary and get low-confidence answers; after `steps` queries a slot takes a new pair. The
    attacker owns a few hundred labelled natural digits."""

    def __init__(self, rng: np.random.Generator, steps: int = 6) -> None:
        split = digits_split()
        own = rng.permutation(split.X_test.shape[0])[:300]
        self.seeds, self.classes = split.X_test[own], split.y_test[own]
        self.steps = steps
        self.searches: list[_LineSearch] = []

    def _new_search(self, rng: np.random.Generator) -> _LineSearch:
        i = int(rng.integers(self.seeds.shape[0]))
        j = int(rng.integers(self.seeds.shape[0]))
        while self.classes[j] == self.classes[i]:
            j = int(rng.integers(self.seeds.shape[0]))
        return _LineSearch(a=self.seeds[i], b=self.seeds[j], label_a=str(self.classes[i]), steps_left=self.steps)

    def __call__(self, rng: np.random.Generator, size: int, previous: tuple[list[str], list[float]] | None):
        if previous is not None:
            for search, label in zip(self.searches, previous[0], strict=False):
                search.learn(label)
        self.searches = [s if s.steps_left > 0 else self._new_search(rng) for s in self.searches[:size]]
        while len(self.searches) < size:
            self.searches.append(self._new_search(rng))
        points = np.array([search.point() for search in self.searches])
        return np.clip(np.floor(points + 0.5), 0, DIGITS_MAX).astype(np.uint8)


def boundary_prober(
    *, seed: int, queries: int, tier: str = "free", model: MLPWeights | None = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Decision-boundary probing: bisection between natural digits of different classes (see `_BoundaryProbe`),
    the line-search attack of Tramèr et al. 2016 for label-only answers."""
    rng = np.random.default_rng(seed)
    return run_attack(
        _BoundaryProbe(rng),
        rng=rng,
        queries=queries,
        tier=tier_pace(tier),
        model=model if model is not None else demo_model(),
        start_at=start_at,
    )


def walk_one_step(rng: np.random.Generator, rows: np.ndarray, *, sent: set[bytes]) -> np.ndarray:
    """One small step from each of `rows` (int, values 0..16): 1..3 pixels moved by 1..3 intensity levels, to an
    input not in `sent` (which it records), as uint8. The walk of a JbDA-style attacker, shared by the simulator and
    the red team."""
    batch = np.array(rows, dtype=np.int16)
    for row in batch:
        while True:
            step = row.copy()
            pixels = rng.choice(DIGITS_FEATURES, size=int(rng.integers(1, 4)), replace=False)
            step[pixels] += rng.integers(1, 4, pixels.size) * rng.choice((-1, 1), pixels.size)
            step = np.clip(step, 0, DIGITS_MAX)
            key = step.astype(np.uint8).tobytes()
            if key not in sent:
                sent.add(key)
                row[:] = step
                break
    return batch.astype(np.uint8)


class _PerturbationWalk:
    """A Jacobian-augmentation-style walk (Papernot et al. 2017) without gradients, from one start image: the batch
    is a set of parallel chains; each query is its chain's current image with 1..3 pixels moved by 1..3 intensity
    levels, and a chain moves on to it when the answer's confidence did not rise (it descends towards the
    decision boundary, one small step at a time). A rational attacker never pays twice for one input."""

    def __init__(self, rng: np.random.Generator) -> None:
        split = digits_split()
        self.start = split.X_test[int(rng.integers(split.X_test.shape[0]))].astype(np.int16)
        self.current: np.ndarray | None = None  # (chains, 64) the chains' current images
        self.current_confidence: np.ndarray | None = None
        self.last: np.ndarray | None = None
        self.sent: set[bytes] = set()

    def __call__(self, rng: np.random.Generator, size: int, previous: tuple[list[str], list[float]] | None):
        if self.current is None or self.current.shape[0] != size:
            self.current = np.repeat(self.start[None, :], size, axis=0)
            self.current_confidence = np.full(size, np.inf)
        elif previous is not None and self.last is not None:
            confidence = np.asarray(previous[1])
            moved = confidence <= self.current_confidence
            self.current[moved] = self.last[moved]
            self.current_confidence[moved] = confidence[moved]
        self.last = walk_one_step(rng, self.current, sent=self.sent)
        return self.last


def perturbation_walker(
    *, seed: int, queries: int, tier: str = "free", model: MLPWeights | None = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Small perturbations of one start image, walking towards the boundary (see `_PerturbationWalk`)."""
    rng = np.random.default_rng(seed)
    return run_attack(
        _PerturbationWalk(rng),
        rng=rng,
        queries=queries,
        tier=tier_pace(tier),
        model=model if model is not None else demo_model(),
        start_at=start_at,
    )


def _natural_strategy(pool: np.ndarray) -> Strategy:
    """Send `pool` in order, then augmented natural digits once it is used up."""
    state = {"next": 0}

    def strategy(rng: np.random.Generator, size: int, _previous: object) -> np.ndarray:
        start = state["next"]
        taken = pool[start : start + size]
        state["next"] = start + taken.shape[0]
        if taken.shape[0] < size:
            taken = np.concatenate([taken, natural_digits(rng, size - taken.shape[0], exact_share=0.0)])
        return taken

    return strategy


def natural_data_retrainer(
    *,
    seed: int,
    queries: int,
    tier: str = "free",
    model: MLPWeights | None = None,
    start_at: float = 0.0,
    pool: np.ndarray | None = None,
) -> list[SimulatedCall]:
    """An attacker labelling its own natural digits through the API to train a copy (Knockoff Nets, Orekondy et
    al. 2019): the real digits (`pool`, default all 1,797 in a seeded order), then augmented ones, at full pace.
    Per input this is what an honest user sends; the scorer does not promise to catch one such account."""
    rng = np.random.default_rng(seed)
    if pool is None:
        split = digits_split()
        everything = np.concatenate([split.X_train, split.X_public, split.X_test]).astype(np.uint8)
        pool = everything[rng.permutation(everything.shape[0])]
    return run_attack(
        _natural_strategy(pool),
        rng=rng,
        queries=queries,
        tier=tier_pace(tier),
        model=model if model is not None else demo_model(),
        start_at=start_at,
    )


ATTACKS: dict[str, Callable[..., list[SimulatedCall]]] = {
    "uniform_random": uniform_random_attacker,
    "boundary": boundary_prober,
    "perturbation_walk": perturbation_walker,
    "natural_data": natural_data_retrainer,
}


def recon_then_attack(
    *,
    seed: int,
    queries: int,
    tier: str = "free",
    model: MLPWeights | None = None,
    attack: str = "boundary",
    recon_errors: int = 16,
) -> list[SimulatedCall]:
    """First map the API: `recon_errors` bad requests over about two minutes, cycling through every kind in
    `RECON_ERRORS`; then, after a pause, run `attack` (a key of `ATTACKS`) for `queries` inputs."""
    rng = np.random.default_rng(seed)
    at = 0.0
    recon = []
    for i in range(recon_errors):
        recon.append(error_call(at, RECON_ERRORS[i % len(RECON_ERRORS)]))
        at += float(rng.exponential(8.0))
    run = ATTACKS[attack]
    return recon + run(seed=seed + 1, queries=queries, tier=tier, model=model, start_at=at + 300.0)


def sybil_ring(
    *,
    accounts: int,
    seed: int,
    strategy: str = "natural_data",
    queries_per_account: int = 400,
    tier: str = "free",
    model: MLPWeights | None = None,
) -> list[list[SimulatedCall]]:
    """One actor behind `accounts` sign-ups, each account running `strategy` at the tier's full pace, all at
    once (started a few seconds apart). For "natural_data" the actor's digits are split between the accounts, so
    no input is sent twice."""
    if accounts < 1:
        raise ValueError("a ring has at least one account")
    rng = np.random.default_rng(seed)
    model = model if model is not None else demo_model()
    streams = []
    if strategy == "natural_data":
        split = digits_split()
        everything = np.concatenate([split.X_train, split.X_public, split.X_test]).astype(np.uint8)
        shards = np.array_split(everything[rng.permutation(everything.shape[0])], accounts)
        for i, shard in enumerate(shards):
            streams.append(
                natural_data_retrainer(
                    seed=seed * 1_000 + i,
                    queries=queries_per_account,
                    tier=tier,
                    model=model,
                    start_at=float(rng.uniform(0, 30)),
                    pool=shard,
                )
            )
    else:
        run = ATTACKS[strategy]
        for i in range(accounts):
            streams.append(
                run(
                    seed=seed * 1_000 + i,
                    queries=queries_per_account,
                    tier=tier,
                    model=model,
                    start_at=float(rng.uniform(0, 30)),
                )
            )
    return streams
