"""The red team's arithmetic: agreement, where copies are measured, the 90% point, cost, quotas and targets."""

from decimal import Decimal

import numpy as np
import pytest

from redteam import measure


def test_agreement_is_the_share_of_equal_top1_labels():
    assert measure.agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError):
        measure.agreement(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError):
        measure.agreement(np.array([]), np.array([]))


@pytest.mark.parametrize(
    ("answered", "points"),
    [
        (0, []),
        (70, [70]),
        (100, [100]),
        (1_340, [100, 300, 1_000, 1_340]),
        (10_000, [100, 300, 1_000, 3_000, 10_000]),
        (12_000, [100, 300, 1_000, 3_000, 10_000, 12_000]),
    ],
)
def test_a_copy_is_measured_at_every_checkpoint_reached_and_where_the_campaign_ended(answered, points):
    assert measure.evaluation_points(answered) == points


def test_refinement_points_lie_strictly_between_on_a_log_scale():
    assert measure.refinement_points(100, 300) == [132, 173, 228]
    assert measure.refinement_points(300, 1_000, count=1) == [548]
    assert measure.refinement_points(0, 100) == [3, 10, 32]
    assert measure.refinement_points(10, 11) == []


def test_queries_to_90_is_the_fewest_measured_queries_at_or_above_the_threshold():
    curve = [(100, 0.5), (300, 0.91), (228, 0.9), (1_000, 0.89), (173, 0.899)]
    assert measure.queries_to_reach(curve) == 228
    assert measure.queries_to_reach([(100, 0.5), (300, 0.8)]) is None
    assert measure.queries_to_reach(curve, threshold=0.5) == 100


def test_usage_cost_is_queries_times_the_price_per_query_in_cents():
    assert measure.usage_cost(300, Decimal("0.5000")) == Decimal("0.15")
    assert measure.usage_cost(173, Decimal("0.5000")) == Decimal("0.09")  # 0.0865, half up
    assert measure.usage_cost(10_000, Decimal("0")) == Decimal("0.00")


@pytest.mark.parametrize(
    ("queries", "days", "quota"), [(300, 30, 9), (301, 30, 10), (3_000, 7, 428), (20, 30, 0), (None, 30, None)]
)
def test_the_recommended_daily_quota_keeps_one_account_cloning_longer_than_the_days(queries, days, quota):
    assert measure.recommended_daily_quota(queries, days) == quota
    if quota:
        assert queries / quota > days and queries / (quota + 1) <= days


def test_the_recommendation_needs_at_least_one_day():
    with pytest.raises(ValueError):
        measure.recommended_daily_quota(100, 0)


def _campaign(name, tier, *, curve, freeze=None, accounts=1, frozen_accounts=0, queries=None, light=None):
    """`curve`: (queries, agreement, watermark p or None); `light`: {queries: (agreement, watermark p)}."""
    light = light or {}
    data = {
        "name": name,
        "tier": tier,
        "accounts": accounts,
        "queries": queries if queries is not None else curve[-1][0],
        "curve": [
            {"queries": q, "agreement": a, "watermark": ({"p_value": p} if p is not None else None)}
            for q, a, p in curve
        ],
        "final_agreement": curve[-1][1],
        "first_freeze": {"queries": freeze} if freeze is not None else None,
        "frozen_accounts": frozen_accounts,
        "all_frozen": frozen_accounts == accounts,
    }
    for point in data["curve"]:
        if point["queries"] in light:
            agreement, p_value = light[point["queries"]]
            point["light"] = {"agreement": agreement, "watermark": {"p_value": p_value}}
    return data


def _summary(campaigns):
    return {
        "baselines": {"defended_agreement": 0.967},
        "tiers": {"free": {"public": True}, "pro": {"public": True}, "enterprise": {"public": False}},
        "campaigns": campaigns,
    }


def test_targets_are_judged_from_the_summary():
    summary = _summary(
        [
            _campaign("equation_solving", "enterprise", curve=[(100, 0.97, None), (300, 0.993, None)]),
            _campaign("uniform", "free", curve=[(100, 0.3, 0.5), (700, 0.45, 0.2)], freeze=700),
            _campaign("adaptive", "pro", curve=[(100, 0.3, 0.5), (400, 0.5, 0.3)], freeze=400),
            _campaign("perturbation", "free", curve=[(100, 0.1, 0.5), (1_900, 0.1, 0.4)], freeze=1_900),
            _campaign("natural", "free", curve=[(100, 0.9, 1.0), (3_000, 0.96, 0.001)]),
            _campaign("sybil", "free", curve=[(100, 0.9, 1.0), (1_500, 0.95, 0.3)], accounts=3, frozen_accounts=3),
        ]
    )
    targets = measure.evaluate_targets(summary)
    assert [t.met for t in targets] == [True, True, True, True, True]
    assert "best 99.3%" in targets[0].detail
    assert "free perturbation: frozen at 1,900, copy 10.0%" in targets[1].detail
    assert "natural at 3,000: p = 0.001" in targets[4].detail


def test_targets_fail_on_a_late_freeze_a_good_unnatural_copy_a_broken_ring_or_a_missed_watermark():
    summary = _summary(
        [
            _campaign("equation_solving", "enterprise", curve=[(100, 0.95, None), (300, 0.985, None)]),
            _campaign("uniform", "free", curve=[(100, 0.3, 0.5), (2_100, 0.5, 0.2)], freeze=2_100),
            _campaign("adaptive", "free", curve=[(100, 0.5, 0.5), (900, 0.81, 0.2)], freeze=900),
            _campaign("natural", "pro", curve=[(100, 0.9, 1.0), (3_000, 0.98, 0.2)]),
            _campaign("sybil", "free", curve=[(100, 0.9, 1.0), (1_500, 0.95, 0.3)], accounts=3, frozen_accounts=2),
        ]
    )
    assert [t.met for t in measure.evaluate_targets(summary)] == [False, False, False, False, False]


def test_targets_not_run_are_not_judged():
    targets = measure.evaluate_targets(_summary([_campaign("natural", "free", curve=[(100, 0.9, 1.0)])]))
    assert [t.met for t in targets] == [None, None, None, True, None]


def test_the_lighter_copy_counts_for_the_natural_data_and_the_watermark_targets():
    natural = _campaign("natural", "free", curve=[(100, 0.9, 1.0), (3_000, 0.96, 0.001)], light={3_000: (0.97, 0.4)})

    targets = measure.evaluate_targets(_summary([natural]))

    assert targets[3].met is False and targets[3].detail == "free natural: best 97.0%"
    assert targets[4].met is False
    assert targets[4].detail == "free natural at 3,000: p = 0.001; free natural at 3,000 (light copy): p = 0.4"


def test_copies_lists_the_close_copy_and_the_light_one_where_there_is_one():
    plain = {"queries": 100, "agreement": 0.9, "watermark": None}
    both = {**plain, "light": {"agreement": 0.8, "watermark": {"p_value": 0.5}}}

    assert measure.copies(plain) == [("close", 0.9, None)]
    assert measure.copies(both) == [("close", 0.9, None), ("light", 0.8, {"p_value": 0.5})]


def test_a_linear_models_exact_equation_solving_counts_for_the_enterprise_target():
    retraining = _campaign("equation_solving", "enterprise", curve=[(100, 0.95, None), (1_000, 0.986, None)])
    solved = {"name": "equation_solving", "tier": "enterprise",
              "result": {"agreement": 1.0, "queries_to_target": 62}}  # fmt: skip
    on_pro = {"name": "equation_solving", "tier": "pro", "result": {"agreement": 0.999, "queries_to_target": 90}}

    assert measure.evaluate_targets(_summary([retraining]))[0].met is False
    target = measure.evaluate_targets({**_summary([retraining]), "kind_campaigns": [solved, on_pro]})[0]
    assert target.met is True
    assert target.detail == "best 98.6%; solved exactly: 100.0%, 99% after 62 queries"
    # Only the kind's attack ran (no retraining campaign): it is judged alone.
    assert measure.evaluate_targets({**_summary([]), "kind_campaigns": [solved]})[0].met is True
