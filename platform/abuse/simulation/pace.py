"""Sending at a tier's pace: the quota a simulated key keeps to, and the loop every attacker shares."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from abuse.simulation.served import DAY_SECONDS, TIERS, SimulatedCall, SimulatedModel, TierPace, answer

# --- Pace -------------------------------------------------------------------------------------------------------


class Quota:
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


def tier_pace(tier: str) -> TierPace:
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"unknown tier {tier!r}; simulated tiers: {', '.join(TIERS)}") from None


# A batch generator: (rng, size, the answers to its previous batch or None) -> canonical inputs (size, d).
Strategy = Callable[[np.random.Generator, int, tuple[list[str], list[float]] | None], np.ndarray]


def run_attack(
    strategy: Strategy,
    *,
    rng: np.random.Generator,
    queries: int,
    tier: TierPace,
    model: SimulatedModel,
    start_at: float = 0.0,
    batch: int | None = None,
) -> list[SimulatedCall]:
    """Run `strategy` at the tier's maximum allowed pace: full batches, evenly spread over each minute, waiting
    for the next hour or day whenever the quota is used up (an attacker who gets 429s gains nothing)."""
    size = batch or tier.max_batch
    interval = 60.0 * size / tier.per_minute
    quota = Quota(tier)
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
