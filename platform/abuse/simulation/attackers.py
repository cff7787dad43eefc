"""Extraction attackers at their tier's full pace, against any served model (`SimulatedModel`; default the defended
digits demo): uniform random inputs, boundary probing (bisections, and interpolations between natural inputs of
different classes), perturbation walks, natural-data retraining, reconnaissance first, and sybil rings. Each moves
in the model's own units: its schema's grid and bounds, its natural data, its features' natural spread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from abuse.simulation.pace import Strategy, run_attack, tier_pace
from abuse.simulation.served import RECON_ERRORS, SimulatedCall, SimulatedModel, as_simulated, error_call
from serving.ml.mlp import MLPWeights

ModelArg = SimulatedModel | MLPWeights | None

# --- Attackers --------------------------------------------------------------------------------------------------


def _uniform_strategy(model: SimulatedModel) -> Strategy:
    schema = model.schema
    top = schema.top_code
    # One bound for every value (an image, a table of one kind of measurement) draws like the scalar it is.
    high = int(top[0]) + 1 if np.all(top == top[0]) else top.astype(np.int64) + 1

    def strategy(rng: np.random.Generator, size: int, _previous: object) -> np.ndarray:
        return rng.integers(0, high, (size, schema.n_features)).astype(schema.code_dtype)

    return strategy


def uniform_random_attacker(
    *, seed: int, queries: int, tier: str = "free", model: ModelArg = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Uniformly random inputs over the schema's whole grid (a digit's every pixel 0..16), the cheapest extraction
    query set (Tramèr et al. 2016)."""
    model = as_simulated(model)
    return run_attack(
        _uniform_strategy(model),
        rng=np.random.default_rng(seed),
        queries=queries,
        tier=tier_pace(tier),
        model=model,
        start_at=start_at,
    )


@dataclass
class _LineSearch:
    """A bisection of the segment from input `a` (class `label_a`) to input `b` on the served label: the boundary
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
    """Line searches between natural inputs of different classes (one per batch slot), so the queries close in on
    the decision boundary and get low-confidence answers; after `steps` queries a slot takes a new pair. The
    attacker owns a few hundred labelled natural inputs."""

    def __init__(self, rng: np.random.Generator, model: SimulatedModel, steps: int = 6) -> None:
        own = rng.permutation(model.heldout.shape[0])[:300]
        self.seeds, self.classes = model.heldout[own].astype(np.float64), model.heldout_labels[own]
        self.labels = model.class_labels
        self.schema = model.schema
        self.steps = steps
        self.searches: list[_LineSearch] = []

    def _new_search(self, rng: np.random.Generator) -> _LineSearch:
        i = int(rng.integers(self.seeds.shape[0]))
        j = int(rng.integers(self.seeds.shape[0]))
        while self.classes[j] == self.classes[i]:
            j = int(rng.integers(self.seeds.shape[0]))
        label_a = self.labels[int(self.classes[i])]
        return _LineSearch(a=self.seeds[i], b=self.seeds[j], label_a=label_a, steps_left=self.steps)

    def __call__(self, rng: np.random.Generator, size: int, previous: tuple[list[str], list[float]] | None):
        if previous is not None:
            for search, label in zip(self.searches, previous[0], strict=False):
                search.learn(label)
        self.searches = [s if s.steps_left > 0 else self._new_search(rng) for s in self.searches[:size]]
        while len(self.searches) < size:
            self.searches.append(self._new_search(rng))
        points = np.array([search.point() for search in self.searches])
        return _on_grid(points, self.schema.top_code, self.schema.code_dtype)


def _on_grid(points: np.ndarray, top_code: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.clip(np.floor(points + 0.5), 0, top_code).astype(dtype)


def boundary_prober(
    *, seed: int, queries: int, tier: str = "free", model: ModelArg = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Decision-boundary probing: bisection between natural inputs of different classes (see `_BoundaryProbe`),
    the line-search attack of Tramèr et al. 2016 for label-only answers."""
    rng = np.random.default_rng(seed)
    model = as_simulated(model)
    return run_attack(
        _BoundaryProbe(rng, model), rng=rng, queries=queries, tier=tier_pace(tier), model=model, start_at=start_at
    )


class _Interpolation:
    """An adaptive retrainer's query set without bisection: points part of the way (30-70%) between two natural
    inputs of different classes, where the boundary lies, plus `natural_share` of natural inputs as they are. No
    point is a small step from another (each pair is new), so the perturbation signal does not see it; what gives it
    away is its low-confidence answers and its spread."""

    def __init__(self, rng: np.random.Generator, model: SimulatedModel, natural_share: float = 0.2) -> None:
        own = rng.permutation(model.heldout.shape[0])[:300]
        self.seeds, self.classes = model.heldout[own].astype(np.float64), model.heldout_labels[own]
        self.model = model
        self.natural_share = natural_share

    def __call__(self, rng: np.random.Generator, size: int, _previous: object) -> np.ndarray:
        schema = self.model.schema
        natural = rng.random(size) < self.natural_share
        out = np.empty((size, schema.n_features), dtype=schema.code_dtype)
        out[natural] = self.model.natural(rng, int(natural.sum()), exact_share=0.0)
        for row in np.flatnonzero(~natural):
            i = int(rng.integers(self.seeds.shape[0]))
            j = int(rng.integers(self.seeds.shape[0]))
            while self.classes[j] == self.classes[i]:
                j = int(rng.integers(self.seeds.shape[0]))
            t = float(rng.uniform(0.3, 0.7))
            out[row] = _on_grid((1 - t) * self.seeds[i] + t * self.seeds[j], schema.top_code, schema.code_dtype)
        return out


def interpolation_prober(
    *, seed: int, queries: int, tier: str = "free", model: ModelArg = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Boundary probing by interpolation (see `_Interpolation`): what an adaptive thief sends (the red team's
    adaptive campaign), at the tier's full pace."""
    rng = np.random.default_rng(seed)
    model = as_simulated(model)
    return run_attack(
        _Interpolation(rng, model), rng=rng, queries=queries, tier=tier_pace(tier), model=model, start_at=start_at
    )


def walk_one_step(
    rng: np.random.Generator,
    rows: np.ndarray,
    *,
    sent: set[bytes],
    top_code: np.ndarray | int = 16,
    unit: np.ndarray | int = 1,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """One small step from each of `rows` (canonical codes, at most `top_code`): 1..3 features moved by 1..3 units
    (`unit`: a feature's small change in codes; one intensity level of a digit's pixel), to an input not in `sent`
    (which it records), as `dtype`. The walk of a JbDA-style attacker, shared by the simulator and the red team;
    the defaults are the digits demo's grid."""
    batch = np.array(rows, dtype=np.int64)
    width = batch.shape[1]
    unit = np.broadcast_to(np.asarray(unit, dtype=np.int64), (width,))
    for row in batch:
        while True:
            step = row.copy()
            features = rng.choice(width, size=int(rng.integers(1, 4)), replace=False)
            step[features] += rng.integers(1, 4, features.size) * rng.choice((-1, 1), features.size) * unit[features]
            step = np.clip(step, 0, top_code)
            key = step.astype(dtype).tobytes()
            if key not in sent:
                sent.add(key)
                row[:] = step
                break
    return batch.astype(dtype)


class _PerturbationWalk:
    """A Jacobian-augmentation-style walk (Papernot et al. 2017) without gradients, from one natural input: the
    batch is a set of parallel chains; each query is its chain's current input with 1..3 features moved by 1..3
    small units (`walk_one_step`), and a chain moves on to it when the answer's confidence did not rise (it descends
    towards the decision boundary, one small step at a time). A rational attacker never pays twice for one input."""

    def __init__(self, rng: np.random.Generator, model: SimulatedModel) -> None:
        self.start = model.heldout[int(rng.integers(model.heldout.shape[0]))].astype(np.int64)
        self.schema = model.schema
        self.unit = model.step_unit
        self.current: np.ndarray | None = None  # (chains, d) the chains' current inputs
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
        self.last = walk_one_step(
            rng,
            self.current,
            sent=self.sent,
            top_code=self.schema.top_code,
            unit=self.unit,
            dtype=self.schema.code_dtype,
        )
        return self.last


def perturbation_walker(
    *, seed: int, queries: int, tier: str = "free", model: ModelArg = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Small perturbations of one natural input, walking towards the boundary (see `_PerturbationWalk`)."""
    rng = np.random.default_rng(seed)
    model = as_simulated(model)
    return run_attack(
        _PerturbationWalk(rng, model), rng=rng, queries=queries, tier=tier_pace(tier), model=model, start_at=start_at
    )


def _natural_strategy(pool: np.ndarray, model: SimulatedModel) -> Strategy:
    """Send `pool` in order, then natural variants once it is used up."""
    state = {"next": 0}

    def strategy(rng: np.random.Generator, size: int, _previous: object) -> np.ndarray:
        start = state["next"]
        taken = pool[start : start + size]
        state["next"] = start + taken.shape[0]
        if taken.shape[0] < size:
            taken = np.concatenate([taken, model.natural(rng, size - taken.shape[0], exact_share=0.0)])
        return taken

    return strategy


def natural_data_retrainer(
    *,
    seed: int,
    queries: int,
    tier: str = "free",
    model: ModelArg = None,
    start_at: float = 0.0,
    pool: np.ndarray | None = None,
) -> list[SimulatedCall]:
    """An attacker labelling its own natural inputs through the API to train a copy (Knockoff Nets, Orekondy et
    al. 2019): real ones (`pool`, default every natural input of the model in a seeded order; the 1,797 digits),
    then natural variants, at full pace. Per input this is what an honest user sends; the scorer does not promise
    to catch one such account."""
    rng = np.random.default_rng(seed)
    model = as_simulated(model)
    if pool is None:
        everything = model.natural_pool
        pool = everything[rng.permutation(everything.shape[0])]
    return run_attack(
        _natural_strategy(pool, model), rng=rng, queries=queries, tier=tier_pace(tier), model=model, start_at=start_at
    )


ATTACKS: dict[str, Callable[..., list[SimulatedCall]]] = {
    "uniform_random": uniform_random_attacker,
    "boundary": boundary_prober,
    "interpolation": interpolation_prober,
    "perturbation_walk": perturbation_walker,
    "natural_data": natural_data_retrainer,
}


def recon_then_attack(
    *,
    seed: int,
    queries: int,
    tier: str = "free",
    model: ModelArg = None,
    attack: str = "boundary",
    recon_errors: int = 16,
) -> list[SimulatedCall]:
    """First map the API: `recon_errors` bad requests over about two minutes, cycling through every kind in
    `RECON_ERRORS`; then, after a pause, run `attack` (a key of `ATTACKS`) for `queries` inputs."""
    rng = np.random.default_rng(seed)
    at = 0.0
    recon = []
    for i in range(recon_errors):
        recon.append(error_call(at, RECON_ERRORS[i % len(RECON_ERRORS)], as_simulated(model).schema.n_features))
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
    model: ModelArg = None,
) -> list[list[SimulatedCall]]:
    """One actor behind `accounts` sign-ups, each account running `strategy` at the tier's full pace, all at
    once (started a few seconds apart). For "natural_data" the actor's natural inputs are split between the
    accounts, so no input is sent twice."""
    if accounts < 1:
        raise ValueError("a ring has at least one account")
    rng = np.random.default_rng(seed)
    model = as_simulated(model)
    streams = []
    if strategy == "natural_data":
        everything = model.natural_pool
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
