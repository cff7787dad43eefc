"""Honest customers: the model's natural inputs at a human, irregular pace, with the odd mistake."""

from __future__ import annotations

import numpy as np

from abuse.simulation.pace import Quota, tier_pace
from abuse.simulation.served import (
    HONEST_ERROR_WEIGHTS,
    HONEST_ERRORS,
    SimulatedCall,
    SimulatedModel,
    answer,
    as_simulated,
    error_call,
)
from serving.ml.mlp import MLPWeights

# --- Honest users -----------------------------------------------------------------------------------------------


def honest_user(
    *,
    seed: int,
    calls: int,
    tier: str = "free",
    model: SimulatedModel | MLPWeights | None = None,
    calls_per_minute: float = 3.0,
    batch: tuple[int, int] | None = None,
    session_calls: tuple[int, int] = (10, 80),
    idle_minutes: float = 90.0,
    error_rate: float = 0.02,
    retry_rate: float = 0.03,
    integration_errors: bool = True,
) -> list[SimulatedCall]:
    """An honest application: `calls` API calls of the model's natural inputs (`SimulatedModel.natural`; default
    model: the defended digits demo).

    Pace: sessions of `session_calls` calls separated by idle gaps (exponential, mean `idle_minutes`); within a
    session Poisson arrivals at `calls_per_minute`; batch sizes uniform in `batch` (default 1..the tier's maximum).
    It never exceeds the tier's limits (a well-behaved client waits). Mistakes: when `integration_errors`, the
    first 0..3 calls of a developer wiring up the client fail (a malformed body, maybe a wrong URL: at most two
    kinds); afterwards each call fails with probability `error_rate` (mostly invalid input); with probability
    `retry_rate` a call re-sends the previous batch (a client retry)."""
    rng = np.random.default_rng(seed)
    pace = tier_pace(tier)
    model = as_simulated(model)
    width = model.schema.n_features
    low, high = batch or (1, pace.max_batch)
    quota = Quota(pace)
    out: list[SimulatedCall] = []
    at = float(rng.uniform(0, 600))
    if integration_errors:
        for kind in ["predict:invalid_input"] * int(rng.integers(0, 3)) + ["unknown:not_found"] * int(
            rng.random() < 0.3
        ):
            out.append(error_call(at, kind, width))
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
            out.append(error_call(at, str(rng.choice(HONEST_ERRORS, p=HONEST_ERROR_WEIGHTS)), width))
            continue
        if previous is not None and rng.random() < retry_rate:
            inputs = previous
        else:
            inputs = model.natural(rng, int(rng.integers(low, high + 1)))
        at = quota.admit(at, inputs.shape[0])
        labels, confidences = answer(model, pace.defenses, inputs)
        out.append(SimulatedCall(at=at, inputs=inputs, labels=labels, confidences=confidences))
        previous = inputs
    return out
