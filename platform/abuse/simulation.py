"""Simulated API traffic, honest and hostile, answered by the real demo model: the test bed of the extraction scorer.

Every generator is deterministic for its `seed` and returns the calls one API key would make, in time order, with
the answers the public API would serve: the defended demo model's logits through `serving.defenses.apply_defenses`
with the tier's defenses (the same pure function the prediction view calls). The simulation has its own fixed
noise and watermark secrets, not the server's: the exact noisy answers differ from production's, their statistics
do not.

Who is simulated:

- `honest_user`: natural digits (held-out rows as they are, and augmented copies of real digits: now and then a
  one-pixel shift, a little stroke-intensity change and noise, so that a copy differs from its original as another
  writer's digit would), sent in sessions of a few calls a minute with random gaps and batch sizes, with a few
  honest mistakes and the odd retried batch.
- `uniform_random_attacker`, `boundary_prober`, `perturbation_walker`: the synthetic-query extraction attacks
  (Tramèr et al. 2016; Papernot et al. 2017; Juuti et al. 2019) at the tier's maximum allowed pace.
- `natural_data_retrainer`: an attacker who owns natural digits and labels them through the API (Knockoff-style
  retraining); per input indistinguishable from honest use. `sybil_ring` splits it, or any other strategy, over
  several accounts.
- `recon_then_attack`: a burst of bad requests to several endpoints, then an attack.

Nothing here imports Django: the benchmark and operators run it from a plain Python prompt. `risk_progression`
replays a stream through `abuse.extraction.extraction_risk` the way the pipeline reads the query log (the last 24 h,
at most the latest 5,000 inputs), to find how many queries an attack needs to reach a score.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from abuse.extraction import InputProfile, QueryWindow, RiskResult, extraction_risk
from serving.defenses import DefenseConfig, apply_defenses
from serving.ml.demo import CLASS_LABELS, DEFENDED, SPLIT_SEED, train_variant
from serving.ml.digits import DIGITS_MAX, DigitsSplit, load_digits_split
from serving.ml.mlp import MLPWeights, forward_logits

# The simulation's own keys: the watermark and noise choices are as random as production's, but not production's.
SIMULATION_NOISE_SECRET = b"moat-simulation-noise-v1"
SIMULATION_WATERMARK_SECRET = b"moat-simulation-watermark-v1"

DAY_SECONDS = 86_400.0
# The pipeline's reading of the query log (settings.ABUSE_RISK_WINDOW, ABUSE_RISK_MAX_INPUTS).
PIPELINE_WINDOW_SECONDS = DAY_SECONDS
PIPELINE_MAX_INPUTS = 5_000


@dataclass(frozen=True)
class TierPace:
    """What a tier lets one organization send, and how its answers are defended. Mirrors the seeded tiers
    (tiers migrations 0002 and 0003); the simulation does not read the database."""

    code: str
    per_minute: int
    per_hour: int
    per_day: int
    max_batch: int
    defenses: DefenseConfig
    # settings.ABUSE_NORMAL_VOLUME_FLOOR (5%) of the daily limit: what the pipeline passes as `normal_volume` for
    # a 24 h window when the tier's median organization sends less, i.e. the most sensitive value it ever uses.
    normal_volume: float


TIERS: dict[str, TierPace] = {
    "free": TierPace(
        code="free",
        per_minute=60,
        per_hour=1_000,
        per_day=10_000,
        max_batch=10,
        defenses=DefenseConfig(top_k=1, confidence_decimals=1, logit_noise_scale=1.0, watermark_fraction=0.005),
        normal_volume=500.0,
    ),
    "pro": TierPace(
        code="pro",
        per_minute=600,
        per_hour=20_000,
        per_day=200_000,
        max_batch=100,
        defenses=DefenseConfig(top_k=1, confidence_decimals=2, logit_noise_scale=0.5, watermark_fraction=0.005),
        normal_volume=10_000.0,
    ),
}

# Bad requests a prober makes while mapping the API (endpoint:error_code, as the query log records them).
RECON_ERRORS = (
    "unknown:not_found",
    "predict:method_not_allowed",
    "models:method_not_allowed",
    "usage:method_not_allowed",
    "predict:model_not_found",
    "predict:invalid_input",
    "predict:payload_too_large",
    "predict:unsupported_media_type",
)
# Honest mistakes, by weight: a malformed body now and then, the odd 429 of a client that does not pace itself.
HONEST_ERRORS = ("predict:invalid_input", "predict:rate_limited", "predict:payload_too_large")
HONEST_ERROR_WEIGHTS = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class SimulatedCall:
    """One API call: when, what was sent, what was served. A failed call has `error` and no inputs."""

    at: float  # seconds since the start of the simulation
    inputs: np.ndarray  # (b, 64) uint8, canonical
    labels: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    error: str | None = None  # "endpoint:error_code"


def _no_inputs() -> np.ndarray:
    return np.zeros((0, 64), dtype=np.uint8)


def _error_call(at: float, kind: str) -> SimulatedCall:
    return SimulatedCall(at=at, inputs=_no_inputs(), error=kind)


# --- The model and the data ---------------------------------------------------------------------------------------


@functools.cache
def digits_split() -> DigitsSplit:
    """The demo models' split (cached): its held-out rows are natural digits the model never trained on."""
    return load_digits_split(seed=SPLIT_SEED)


@functools.cache
def demo_model() -> MLPWeights:
    """The defended demo model the public tiers are served by, trained once per process: the very weights of
    `train_demo_models().defended` (same split, configuration and seed; training is deterministic), without
    training the full model too."""
    return train_variant(digits_split(), DEFENDED)


def answer(
    model: MLPWeights,
    tier_defenses: DefenseConfig,
    inputs: np.ndarray,
    *,
    class_labels: Sequence[str] = CLASS_LABELS,
    noise_secret: bytes = SIMULATION_NOISE_SECRET,
    watermark_secret: bytes = SIMULATION_WATERMARK_SECRET,
) -> tuple[list[str], list[float]]:
    """The served labels and confidences for canonical `inputs` (n, 64) uint8, as the prediction view computes
    them: the model's logits, then the tier's output defenses."""
    rows = np.ascontiguousarray(inputs, dtype=np.uint8)
    if rows.shape[0] == 0:
        return [], []
    logits = forward_logits(model, rows.astype(np.float64))
    defended = apply_defenses(
        logits,
        rows,
        config=tier_defenses,
        class_labels=class_labels,
        noise_secret=noise_secret,
        watermark_secret=watermark_secret,
    )
    return [item.label for item in defended], [float(item.confidence) for item in defended]


def reference_profile(model: MLPWeights | None = None, *, tier: str = "free") -> InputProfile:
    """The demo model's reference profile: fitted on its training rows, with the natural low-confidence share
    measured on its held-out rows as `tier` serves them. The free tier (the noisiest answers) is the default: a
    higher natural baseline means fewer honest users flagged for low confidences on any public tier."""
    model = model if model is not None else demo_model()
    split = digits_split()
    heldout = split.X_test.astype(np.uint8)
    _, confidences = answer(model, TIERS[tier].defenses, heldout)
    return InputProfile.fit(split.X_train, X_heldout=split.X_test, heldout_confidences=np.asarray(confidences))


# --- Natural inputs ---------------------------------------------------------------------------------------------


def _shift(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Shift each 8x8 image by (dy, dx) in {-1, 0, 1}, filling with background (0)."""
    out = np.zeros_like(images)
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            rows = np.flatnonzero((dy == sy) & (dx == sx))
            if rows.size == 0:
                continue
            src = images[rows]
            dst = np.zeros_like(src)
            ys, ye = max(sy, 0), 8 + min(sy, 0)
            xs, xe = max(sx, 0), 8 + min(sx, 0)
            dst[:, ys:ye, xs:xe] = src[:, ys - sy : ye - sy, xs - sx : xe - sx]
            out[rows] = dst
    return out


def natural_digits(rng: np.random.Generator, n: int, *, exact_share: float = 0.3) -> np.ndarray:
    """`n` natural digits (n, 64) uint8: a share `exact_share` are held-out rows as they are, the rest augmented
    copies of any real digit (train or held-out): shifted by one pixel one time in ten, strokes scaled by
    0.8..1.2, and the inked pixels given noise of standard deviation 1. Training rows practically never appear as
    they are (a real user's digits are new to the model), and two augmented copies of one digit are several
    pixels' worth apart, like two writers' digits, not a small step from each other."""
    split = digits_split()
    everything = np.concatenate([split.X_train, split.X_test])
    exact = rng.random(n) < exact_share
    out = np.empty((n, 64), dtype=np.uint8)
    n_exact = int(exact.sum())
    out[exact] = split.X_test[rng.integers(0, split.X_test.shape[0], n_exact)].astype(np.uint8)
    n_aug = n - n_exact
    if n_aug:
        base = everything[rng.integers(0, everything.shape[0], n_aug)].reshape(n_aug, 8, 8)
        shifted = rng.random(n_aug) < 0.1
        dy = np.where(shifted, rng.integers(-1, 2, n_aug), 0)
        dx = np.where(shifted, rng.integers(-1, 2, n_aug), 0)
        images = _shift(base, dy, dx).reshape(n_aug, 64)
        scale = rng.uniform(0.8, 1.2, (n_aug, 1))
        noise = rng.normal(0.0, 1.0, (n_aug, 64)) * (images > 0)
        out[~exact] = np.clip(np.floor(images * scale + noise + 0.5), 0, DIGITS_MAX).astype(np.uint8)
    return out


# --- Pace -------------------------------------------------------------------------------------------------------


class _Quota:
    """The tier's per-minute, per-hour and per-day limits as fixed windows from the start of the simulation, like
    the quota limiter's; `admit` returns the earliest time >= `at` at which `size` more inputs are allowed."""

    def __init__(self, tier: TierPace) -> None:
        self.limits = ((60.0, tier.per_minute), (3_600.0, tier.per_hour), (DAY_SECONDS, tier.per_day))
        self.used: dict[tuple[float, int], int] = {}

    def admit(self, at: float, size: int) -> float:
        while True:
            for length, limit in self.limits:
                window = int(at // length)
                if self.used.get((length, window), 0) + size > limit:
                    at = (window + 1) * length
                    break
            else:
                for length, _ in self.limits:
                    key = (length, int(at // length))
                    self.used[key] = self.used.get(key, 0) + size
                return at


def _tier(tier: str) -> TierPace:
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"unknown tier {tier!r}; simulated tiers: {', '.join(TIERS)}") from None


# A batch generator: (rng, size, the answers to its previous batch or None) -> canonical inputs (size, 64).
Strategy = Callable[[np.random.Generator, int, tuple[list[str], list[float]] | None], np.ndarray]


def _attack(
    strategy: Strategy,
    *,
    rng: np.random.Generator,
    queries: int,
    tier: TierPace,
    model: MLPWeights,
    start_at: float = 0.0,
    batch: int | None = None,
) -> list[SimulatedCall]:
    """Run `strategy` at the tier's maximum allowed pace: full batches, evenly spread over each minute, waiting
    for the next hour or day whenever the quota is used up (an attacker who gets 429s gains nothing)."""
    size = batch or tier.max_batch
    interval = 60.0 * size / tier.per_minute
    quota = _Quota(tier)
    calls: list[SimulatedCall] = []
    at, sent, previous = start_at, 0, None
    while sent < queries:
        b = min(size, queries - sent)
        at = quota.admit(at, b)
        inputs = strategy(rng, b, previous)
        previous = answer(model, tier.defenses, inputs)
        calls.append(SimulatedCall(at=at, inputs=inputs, labels=previous[0], confidences=previous[1]))
        sent += b
        at += interval
    return calls


# --- Honest users -----------------------------------------------------------------------------------------------


def honest_user(
    *,
    seed: int,
    calls: int,
    tier: str = "free",
    model: MLPWeights | None = None,
    calls_per_minute: float = 3.0,
    batch: tuple[int, int] | None = None,
    session_calls: tuple[int, int] = (10, 80),
    idle_minutes: float = 90.0,
    error_rate: float = 0.02,
    retry_rate: float = 0.03,
    integration_errors: bool = True,
) -> list[SimulatedCall]:
    """An honest application: `calls` API calls of natural digits (see `natural_digits`).

    Pace: sessions of `session_calls` calls separated by idle gaps (exponential, mean `idle_minutes`); within a
    session Poisson arrivals at `calls_per_minute`; batch sizes uniform in `batch` (default 1..the tier's maximum).
    It never exceeds the tier's limits (a well-behaved client waits). Mistakes: when `integration_errors`, the
    first 0..3 calls of a developer wiring up the client fail (a malformed body, maybe a wrong URL: at most two
    kinds); afterwards each call fails with probability `error_rate` (mostly invalid input); with probability
    `retry_rate` a call re-sends the previous batch (a client retry)."""
    rng = np.random.default_rng(seed)
    pace = _tier(tier)
    model = model if model is not None else demo_model()
    low, high = batch or (1, pace.max_batch)
    quota = _Quota(pace)
    out: list[SimulatedCall] = []
    at = float(rng.uniform(0, 600))
    if integration_errors:
        for kind in ["predict:invalid_input"] * int(rng.integers(0, 3)) + ["unknown:not_found"] * int(
            rng.random() < 0.3
        ):
            out.append(_error_call(at, kind))
            at += float(rng.exponential(30.0))
    session_left = int(rng.integers(session_calls[0], session_calls[1] + 1))
    previous: np.ndarray | None = None
    for _ in range(calls):
        if session_left == 0:
            at += float(rng.exponential(idle_minutes * 60.0))
            session_left = int(rng.integers(session_calls[0], session_calls[1] + 1))
        session_left -= 1
        at += float(rng.exponential(60.0 / calls_per_minute))
        if rng.random() < error_rate:
            out.append(_error_call(at, str(rng.choice(HONEST_ERRORS, p=HONEST_ERROR_WEIGHTS))))
            continue
        if previous is not None and rng.random() < retry_rate:
            inputs = previous
        else:
            inputs = natural_digits(rng, int(rng.integers(low, high + 1)))
        at = quota.admit(at, inputs.shape[0])
        labels, confidences = answer(model, pace.defenses, inputs)
        out.append(SimulatedCall(at=at, inputs=inputs, labels=labels, confidences=confidences))
        previous = inputs
    return out


# --- Attackers --------------------------------------------------------------------------------------------------


def _uniform_strategy(rng: np.random.Generator, size: int, _previous: object) -> np.ndarray:
    return rng.integers(0, DIGITS_MAX + 1, (size, 64), dtype=np.uint8)


def uniform_random_attacker(
    *, seed: int, queries: int, tier: str = "free", model: MLPWeights | None = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Uniformly random images (every pixel 0..16), the cheapest extraction query set (Tramèr et al. 2016)."""
    return _attack(
        _uniform_strategy,
        rng=np.random.default_rng(seed),
        queries=queries,
        tier=_tier(tier),
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
    return _attack(
        _BoundaryProbe(rng),
        rng=rng,
        queries=queries,
        tier=_tier(tier),
        model=model if model is not None else demo_model(),
        start_at=start_at,
    )


def perturbation_steps(rng: np.random.Generator, rows: np.ndarray, *, sent: set[bytes]) -> np.ndarray:
    """One small step from each of `rows` (int, values 0..16): 1..3 pixels moved by 1..3 intensity levels, to an
    input not in `sent` (which it records), as uint8. The walk of a JbDA-style attacker, shared by the simulator and
    the red team."""
    batch = np.array(rows, dtype=np.int16)
    for row in batch:
        while True:
            step = row.copy()
            pixels = rng.choice(64, size=int(rng.integers(1, 4)), replace=False)
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
        self.last = perturbation_steps(rng, self.current, sent=self.sent)
        return self.last


def perturbation_walker(
    *, seed: int, queries: int, tier: str = "free", model: MLPWeights | None = None, start_at: float = 0.0
) -> list[SimulatedCall]:
    """Small perturbations of one start image, walking towards the boundary (see `_PerturbationWalk`)."""
    rng = np.random.default_rng(seed)
    return _attack(
        _PerturbationWalk(rng),
        rng=rng,
        queries=queries,
        tier=_tier(tier),
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
        everything = np.concatenate([split.X_train, split.X_test]).astype(np.uint8)
        pool = everything[rng.permutation(everything.shape[0])]
    return _attack(
        _natural_strategy(pool),
        rng=rng,
        queries=queries,
        tier=_tier(tier),
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
        recon.append(_error_call(at, RECON_ERRORS[i % len(RECON_ERRORS)]))
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
        everything = np.concatenate([split.X_train, split.X_test]).astype(np.uint8)
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


# --- From calls to windows and scores ---------------------------------------------------------------------------


def merge_streams(streams: Sequence[Sequence[SimulatedCall]]) -> list[SimulatedCall]:
    """Several accounts' calls as one time-ordered stream (a ring's merged query log). Stable for equal times."""
    return list(heapq.merge(*streams, key=lambda call: call.at))


def window_from_calls(
    calls: Sequence[SimulatedCall],
    *,
    accounts: int = 1,
    n_classes: int = len(CLASS_LABELS),
    now: float | None = None,
    window_seconds: float = PIPELINE_WINDOW_SECONDS,
    max_inputs: int = PIPELINE_MAX_INPUTS,
    epoch: float = 1_700_000_000.0,
) -> QueryWindow:
    """The `QueryWindow` the pipeline would read at `now` (default: the last call's time): the calls of the last
    `window_seconds`, at most the latest `max_inputs` inputs (with `total_inputs` counting them all). Times are
    epoch seconds (`epoch` + simulation time)."""
    if now is None:
        now = calls[-1].at if calls else 0.0
    recent = [call for call in calls if now - window_seconds < call.at <= now]
    ok = [call for call in recent if call.error is None and call.inputs.shape[0]]
    errors = [call for call in recent if call.error is not None]
    if ok:
        inputs = np.concatenate([call.inputs for call in ok])
        labels = np.array([label for call in ok for label in call.labels], dtype=str)
        confidences = np.array([c for call in ok for c in call.confidences], dtype=np.float64)
        times = np.concatenate([np.full(call.inputs.shape[0], epoch + call.at) for call in ok])
    else:
        inputs, labels = _no_inputs(), np.array([], dtype=str)
        confidences, times = np.zeros(0), np.zeros(0)
    total = int(inputs.shape[0])
    if total > max_inputs:
        inputs, labels = inputs[-max_inputs:], labels[-max_inputs:]
        confidences, times = confidences[-max_inputs:], times[-max_inputs:]
    return QueryWindow(
        inputs=inputs,
        labels=labels,
        confidences=confidences,
        times=times,
        error_times=np.array([epoch + call.at for call in errors], dtype=np.float64),
        error_kinds=[call.error for call in errors],
        n_classes=n_classes,
        accounts=accounts,
        total_inputs=total,
    )


@dataclass(frozen=True)
class ProgressPoint:
    queries: int  # inputs sent so far (all accounts)
    at: float  # simulation time of the evaluation
    result: RiskResult


def risk_progression(
    calls: Sequence[SimulatedCall],
    profile: InputProfile | None,
    *,
    normal_volume: float,
    every: int = 100,
    accounts: int = 1,
    stop_at_score: int | None = None,
) -> list[ProgressPoint]:
    """Score the stream after every `every` inputs (at the first call that reaches each multiple), over the
    window the pipeline would read at that moment. Stops early once a score reaches `stop_at_score`."""
    points: list[ProgressPoint] = []
    sent, next_mark = 0, every
    for i, call in enumerate(calls):
        sent += call.inputs.shape[0]
        if sent < next_mark:
            continue
        window = window_from_calls(calls[: i + 1], accounts=accounts)
        result = extraction_risk(window, profile, normal_volume=normal_volume)
        points.append(ProgressPoint(queries=sent, at=call.at, result=result))
        while next_mark <= sent:
            next_mark += every
        if stop_at_score is not None and result.score >= stop_at_score:
            break
    return points


def queries_to_reach(points: Sequence[ProgressPoint], score: int) -> int | None:
    """The inputs sent when the score first reached `score`, or None if it never did."""
    return next((point.queries for point in points if point.result.score >= score), None)
