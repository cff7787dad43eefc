"""The product's promise, measured: simulated attackers are frozen early, simulated honest users are never throttled.

How it is measured. Every stream comes from abuse.simulation, answered by the real defended demo model with the
tier's output defenses. It is replayed through `extraction_risk` the way the pipeline reads the query log — the
last 24 h, at most the latest 5,000 inputs — after every 100 inputs sent (honest pro users every 250 and the heavy
ones every 500 or 1,000, to keep the suite fast: their scores move slowly). `normal_volume` is what the pipeline
passes for a 24 h window when a tier's median organization sends less: the floor, 5% of the daily limit
(settings.ABUSE_NORMAL_VOLUME_FLOOR) — 500 inputs for free, 10,000 for pro — the most sensitive value it uses.

Measured with the seeds below (deterministic), inputs sent when the score first reached the freeze level (80):

    uniform random      free 200   pro 100        boundary probing  free 100   pro 400
    perturbation walk   free 300   pro 300        recon, then probe free 100   pro 200
    sybil ring of 5 free accounts retraining on natural data, merged: 1,300 (about 4.5 minutes at full pace)

Honest users (10 free, 10 pro, a heavy pro customer sending 20,000 natural inputs in a day and a heavy free one
at 9x the free normal): highest score 29, the heavy free user; all others <= 19.

Not promised: one account retraining on natural digits (Knockoff-style) at the tier's normal volume. Input by
input it is honest traffic; only its volume differs, and volume alone must not freeze a big honest customer. A
ring of such accounts is caught because it is a ring (linked_accounts). A pro-tier ring is caught the same way,
but only once its merged volume passes 2.5x a pro organization's normal (about 25,000 inputs).
"""

import numpy as np
import pytest

from abuse.extraction import FREEZE_SCORE, THROTTLE_SCORE
from abuse.simulation import (
    TIERS,
    boundary_prober,
    honest_user,
    merge_streams,
    natural_data_retrainer,
    perturbation_walker,
    queries_to_reach,
    recon_then_attack,
    risk_progression,
    sybil_ring,
    uniform_random_attacker,
)

NORMAL_VOLUME = {tier: pace.normal_volume for tier, pace in TIERS.items()}
# "Well before 2,000 queries, ideally by a few hundred."
FREEZE_BUDGET = 600

ATTACKS = {
    "uniform_random": lambda model, tier: uniform_random_attacker(seed=1, queries=2_000, tier=tier, model=model),
    "boundary_probing": lambda model, tier: boundary_prober(seed=1, queries=2_000, tier=tier, model=model),
    "perturbation_walk": lambda model, tier: perturbation_walker(seed=1, queries=2_000, tier=tier, model=model),
    "recon_then_probe": lambda model, tier: recon_then_attack(seed=1, queries=2_000, tier=tier, model=model),
}


@pytest.mark.parametrize("tier", ["free", "pro"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attackers_with_unnatural_inputs_are_frozen_within_a_few_hundred_queries(
    defended_model, profile, attack, tier, record_property
):
    calls = ATTACKS[attack](defended_model, tier)

    points = risk_progression(calls, profile, normal_volume=NORMAL_VOLUME[tier], stop_at_score=FREEZE_SCORE)

    frozen_at = queries_to_reach(points, FREEZE_SCORE)
    record_property("queries_to_freeze", frozen_at)
    print(f"{attack} ({tier}): frozen after {frozen_at} queries; {points[-1].result.explanation}")
    assert frozen_at is not None
    assert frozen_at <= FREEZE_BUDGET


def test_a_sybil_ring_retraining_on_natural_data_is_frozen_by_its_merged_window(
    defended_model, profile, record_property
):
    streams = sybil_ring(accounts=5, seed=1, strategy="natural_data", queries_per_account=400, model=defended_model)

    points = risk_progression(
        merge_streams(streams), profile, normal_volume=NORMAL_VOLUME["free"], accounts=5, stop_at_score=FREEZE_SCORE
    )

    frozen_at = queries_to_reach(points, FREEZE_SCORE)
    record_property("queries_to_freeze", frozen_at)
    print(f"sybil ring (free, 5 accounts): frozen after {frozen_at} queries; {points[-1].result.explanation}")
    assert frozen_at is not None
    assert frozen_at < 2_000
    # Honestly: what freezes it is that it is a ring. Its inputs are natural digits; the distribution signals
    # stay silent, and being linked is the strongest reason.
    result = points[-1].result
    assert max(result.components, key=lambda c: c.points).name == "linked_accounts"
    assert result.component("unnatural_inputs").points == 0.0
    assert result.component("perturbation_walk").points == 0.0


def test_the_same_natural_retraining_from_one_account_scores_like_honest_use(defended_model, profile):
    """Not caught, by design: one account labelling natural digits at the free tier's full pace up to four times
    the normal daily volume is, input by input and in volume, a busy honest customer."""
    calls = natural_data_retrainer(seed=1, queries=2_000, tier="free", model=defended_model)

    points = risk_progression(calls, profile, normal_volume=NORMAL_VOLUME["free"])

    assert max(p.result.score for p in points) < THROTTLE_SCORE


HONEST = [
    *[(f"free-{seed}", "free", {"seed": seed, "calls": 80 + 40 * seed}, 100) for seed in range(10)],
    *[(f"pro-{seed}", "pro", {"seed": 100 + seed, "calls": 20 + 6 * seed}, 250) for seed in range(10)],
    # 20,000 natural inputs in under a day, at a steady pace: twice the pro normal.
    ("heavy-pro", "pro", {"seed": 999, "calls": 280, "batch": (50, 100), "calls_per_minute": 4.0}, 1_000),
    # About 5,000 inputs in a day on the free tier: nine times the free normal.
    ("heavy-free", "free", {"seed": 998, "calls": 700, "batch": (5, 10)}, 500),
]


@pytest.mark.parametrize(("name", "tier", "behaviour", "every"), HONEST, ids=[row[0] for row in HONEST])
def test_honest_users_are_never_throttled(defended_model, profile, name, tier, behaviour, every, record_property):
    calls = honest_user(tier=tier, model=defended_model, **behaviour)

    points = risk_progression(calls, profile, normal_volume=NORMAL_VOLUME[tier], every=every)

    worst = max(points, key=lambda p: p.result.score)
    record_property("max_score", worst.result.score)
    print(f"honest {name}: {points[-1].queries} inputs, max score {worst.result.score} at {worst.queries}")
    assert worst.result.score < THROTTLE_SCORE


def test_the_heavy_honest_pro_customer_sends_20000_natural_inputs_in_a_day(defended_model):
    calls = honest_user(tier="pro", model=defended_model, **HONEST[20][2])

    sent = sum(len(call.inputs) for call in calls)
    assert sent >= 20_000
    assert calls[-1].at - calls[0].at < 86_400
    assert np.all(np.diff([call.at for call in calls]) >= 0)
