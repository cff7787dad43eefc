"""abuse.simulation: simulated honest users and attackers, answered by the real defended model at their tier's pace."""

import itertools
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from abuse import simulation
from abuse.extraction import LOW_CONFIDENCE, perturbation_steps
from abuse.simulation import (
    HONEST_ERRORS,
    RECON_ERRORS,
    TIERS,
    SimulatedCall,
    answer,
    boundary_prober,
    digits_split,
    honest_user,
    merge_streams,
    natural_data_retrainer,
    perturbation_walker,
    queries_to_reach,
    recon_then_attack,
    risk_progression,
    sybil_ring,
    uniform_random_attacker,
    window_from_calls,
)
from serving.defenses import DefenseConfig
from serving.ml.mlp import forward_logits, softmax


def _inputs(calls: list[SimulatedCall]) -> np.ndarray:
    return np.concatenate([call.inputs for call in calls if call.error is None])


def _busiest(calls: list[SimulatedCall], seconds: float) -> int:
    """The most inputs sent in one fixed window of `seconds` (the quota limiter's windows)."""
    per_window = Counter()
    for call in calls:
        per_window[int(call.at // seconds)] += len(call.inputs)
    return max(per_window.values())


def test_the_simulation_is_served_by_the_defended_demo_model(defended_model, demo_run):
    served = demo_run.models.defended.weights  # what `train_demo_model` registered for the public tiers

    assert defended_model.hidden == served.hidden and defended_model.input_levels == served.input_levels
    for mine, theirs in zip(
        defended_model.weights + defended_model.biases, served.weights + served.biases, strict=True
    ):
        assert np.array_equal(mine, theirs)


def test_answer_without_defenses_is_the_models_own(defended_model):
    rows = digits_split().X_test[:50].astype(np.uint8)

    labels, confidences = answer(defended_model, DefenseConfig.none(), rows)

    probabilities = softmax(forward_logits(defended_model, rows.astype(np.float64)))
    assert labels == [str(c) for c in probabilities.argmax(axis=1)]
    assert confidences == probabilities.max(axis=1).tolist()


def test_answer_applies_the_free_tiers_defenses(defended_model):
    rows = digits_split().X_test.astype(np.uint8)

    labels, confidences = answer(defended_model, TIERS["free"].defenses, rows)

    clean = [str(c) for c in forward_logits(defended_model, rows.astype(np.float64)).argmax(axis=1)]
    assert all(round(c, 1) == c for c in confidences)  # one decimal
    # The label guard keeps the model's label; only watermark answers differ: the regions hold at most the tier's
    # 1.5% of the reference digits, and unseen digits scatter around that (10 of these 450 under this secret).
    assert sum(a != b for a, b in zip(labels, clean, strict=True)) <= 0.03 * len(rows)
    assert answer(defended_model, TIERS["free"].defenses, rows[:0]) == ([], [])


@pytest.mark.parametrize(
    "generate",
    [
        lambda m, seed: honest_user(seed=seed, calls=40, model=m),
        lambda m, seed: uniform_random_attacker(seed=seed, queries=300, model=m),
        lambda m, seed: boundary_prober(seed=seed, queries=300, model=m),
        lambda m, seed: perturbation_walker(seed=seed, queries=300, model=m),
        lambda m, seed: natural_data_retrainer(seed=seed, queries=300, model=m),
        lambda m, seed: recon_then_attack(seed=seed, queries=300, model=m),
    ],
    ids=["honest", "uniform", "boundary", "walk", "natural", "recon"],
)
def test_generators_are_deterministic_for_a_seed(defended_model, generate):
    first, again, other = generate(defended_model, 1), generate(defended_model, 1), generate(defended_model, 2)

    assert [c.at for c in first] == [c.at for c in again]
    assert np.array_equal(_inputs(first), _inputs(again))
    assert [c.labels for c in first] == [c.labels for c in again]
    assert not np.array_equal(_inputs(first), _inputs(other))


@pytest.mark.parametrize(("tier", "batch", "per_minute"), [("free", 10, 60), ("pro", 100, 600)])
def test_attackers_run_at_their_tiers_full_allowed_pace(defended_model, tier, batch, per_minute):
    calls = uniform_random_attacker(seed=1, queries=2_000, tier=tier, model=defended_model)

    assert sum(len(c.inputs) for c in calls) == 2_000
    assert {len(c.inputs) for c in calls} == {batch}
    assert _busiest(calls, 60) == per_minute
    assert _busiest(calls, 3_600) <= TIERS[tier].per_hour
    assert all(b.at > a.at for a, b in itertools.pairwise(calls))


def test_a_free_attacker_waits_for_the_next_hour_once_the_hourly_quota_is_spent(defended_model):
    calls = uniform_random_attacker(seed=1, queries=2_000, tier="free", model=defended_model)

    # 1,000 inputs an hour at 60 a minute: the first hour's quota is gone after 1,000 inputs (16 min 40 s).
    assert _busiest(calls, 3_600) == 1_000
    assert calls[100].at == 3_600.0


def test_honest_users_send_natural_digits_never_a_bare_copy_of_a_training_row(defended_model, profile):
    calls = honest_user(seed=3, calls=120, tier="free", model=defended_model)
    inputs = _inputs(calls)
    training_rows = {row.tobytes() for row in digits_split().X_train.astype(np.uint8)}

    assert inputs.dtype == np.uint8 and inputs.max() <= 16
    assert not any(row.tobytes() in training_rows for row in inputs)
    assert np.mean(profile.distances(inputs) > profile.distance_q99) < 0.08
    # Augmented copies of one digit differ like two writers' digits, not by a pixel or two.
    assert perturbation_steps(inputs, profile.perturbation_radius).steps.mean() < 0.05


@pytest.mark.parametrize("tier", ["free", "pro"])
def test_honest_users_call_at_a_human_pace_within_their_limits(defended_model, tier):
    calls = honest_user(seed=4, calls=200, tier=tier, model=defended_model)
    sizes = [len(c.inputs) for c in calls if c.error is None]
    gaps = np.diff([c.at for c in calls])

    assert min(sizes) >= 1 and max(sizes) <= TIERS[tier].max_batch
    assert _busiest(calls, 60) <= TIERS[tier].per_minute
    assert np.all(gaps >= 0)
    assert 5 < np.median(gaps) < 60  # a few calls a minute while working, with idle hours in between
    assert gaps.max() > 3_600


def test_honest_mistakes_are_few_and_of_few_kinds(defended_model):
    calls = honest_user(seed=1, calls=200, model=defended_model)
    errors = [c.error for c in calls if c.error is not None]

    # Wiring up the client: a malformed body twice and a wrong URL, first; later the odd honest error.
    assert [c.error for c in calls[:3]] == ["predict:invalid_input", "predict:invalid_input", "unknown:not_found"]
    assert set(errors) <= {*HONEST_ERRORS, "unknown:not_found"}
    assert len(errors) <= 0.05 * len(calls) + 3
    assert all(len(c.inputs) == 0 and c.labels == [] for c in calls if c.error is not None)


def test_the_boundary_prober_gets_far_more_low_confidence_answers_than_natural_digits(defended_model, profile):
    calls = boundary_prober(seed=2, queries=1_000, model=defended_model)
    confidences = np.concatenate([c.confidences for c in calls])

    assert np.mean(confidences < LOW_CONFIDENCE) > 3 * profile.low_confidence_share


def test_the_perturbation_walker_walks_from_one_image_in_small_distinct_steps(defended_model, profile):
    inputs = _inputs(perturbation_walker(seed=3, queries=1_000, model=defended_model))

    measured = perturbation_steps(inputs, profile.perturbation_radius)

    assert len({row.tobytes() for row in inputs}) == 1_000
    assert measured.steps.mean() > 0.99
    assert measured.largest_family >= 900  # a step of 3 pixels by 3 levels (5.2) is just beyond the radius
    assert measured.longest_chain >= 30  # how long depends on how the served confidence answers each step


def test_the_natural_data_retrainer_labels_every_real_digit_once(defended_model):
    split = digits_split()
    everything = {
        row.tobytes() for row in np.concatenate([split.X_train, split.X_public, split.X_test]).astype(np.uint8)
    }

    inputs = _inputs(natural_data_retrainer(seed=5, queries=1_797, model=defended_model))

    assert {row.tobytes() for row in inputs} == everything


def test_a_sybil_ring_splits_its_digits_between_accounts_that_each_run_at_full_pace(defended_model):
    streams = sybil_ring(accounts=5, seed=6, queries_per_account=300, model=defended_model)
    per_account = [{row.tobytes() for row in _inputs(stream)} for stream in streams]
    merged = merge_streams(streams)

    assert len(streams) == 5
    assert [len(inputs) for inputs in per_account] == [300] * 5
    assert len(set.union(*per_account)) == 1_500  # no digit sent by two accounts
    assert all(_busiest(stream, 60) == 60 for stream in streams)
    assert len(merged) == sum(len(stream) for stream in streams)
    assert [c.at for c in merged] == sorted(c.at for c in merged)


def test_recon_then_attack_maps_the_api_before_attacking(defended_model):
    calls = recon_then_attack(seed=7, queries=200, model=defended_model)
    recon, attack = calls[:16], calls[16:]

    assert {c.error for c in recon} == set(RECON_ERRORS)
    assert all(c.error is None for c in attack)
    assert attack[0].at - recon[-1].at >= 300.0
    assert sum(len(c.inputs) for c in attack) == 200


def test_window_from_calls_reads_what_the_pipeline_reads():
    def call(at: float, n: int, error: str | None = None) -> SimulatedCall:
        if error:
            return SimulatedCall(at=at, inputs=np.zeros((0, 64), dtype=np.uint8), error=error)
        rows = np.full((n, 64), int(at) % 17, dtype=np.uint8)
        return SimulatedCall(at=at, inputs=rows, labels=["3"] * n, confidences=[0.5] * n)

    calls = [call(0.0, 4_000), call(10.0, 0, "predict:invalid_input"), call(90_000.0, 3_000), call(90_010.0, 3_000)]

    window = window_from_calls(calls, accounts=2)

    # The call at 0 s is more than 24 h before the last one; of the 6,000 inputs since, the latest 5,000.
    assert window.total_inputs == 6_000
    assert window.volume == 6_000
    assert len(window.inputs) == 5_000
    assert window.times[0] == 1_700_090_000.0 and window.times[-1] == 1_700_090_010.0
    assert len(window.error_kinds) == 0
    assert window.accounts == 2
    assert window_from_calls(calls, now=10.0).error_kinds == ["predict:invalid_input"]


def test_risk_progression_scores_every_hundred_inputs_and_finds_the_first_freeze(defended_model, profile):
    calls = uniform_random_attacker(seed=1, queries=1_000, model=defended_model)

    points = risk_progression(calls, profile, normal_volume=500, every=100)

    assert [p.queries for p in points] == list(range(100, 1_001, 100))
    assert queries_to_reach(points, 0) == 100
    assert queries_to_reach(points, 101) is None
    stopped = risk_progression(calls, profile, normal_volume=500, every=100, stop_at_score=points[0].result.score)
    assert len(stopped) == 1


def test_reference_profile_uses_the_answers_the_tier_serves(defended_model):
    free, pro = (simulation.reference_profile(defended_model, tier=t) for t in ("free", "pro"))
    heldout = digits_split().X_test.astype(np.uint8)
    _, served = answer(defended_model, TIERS["pro"].defenses, heldout)

    assert pro.low_confidence_share == np.mean(np.asarray(served) < LOW_CONFIDENCE)
    assert np.array_equal(free.precision, pro.precision)


def test_unknown_tiers_and_empty_rings_are_refused(defended_model):
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        uniform_random_attacker(seed=1, queries=10, tier="gold", model=defended_model)
    with pytest.raises(ValueError, match="at least one account"):
        sybil_ring(accounts=0, seed=1, model=defended_model)


def test_the_scorer_and_the_simulation_run_without_django():
    code = "import sys, abuse.extraction, abuse.simulation; print('django' in sys.modules)"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)  # noqa: S603

    assert completed.stdout == "False\n"


# --- Any model --------------------------------------------------------------------------------------------------------


def test_the_tabular_demo_is_simulated_on_its_own_grid(cancer_model):
    schema = cancer_model.schema
    calls = uniform_random_attacker(seed=4, queries=300, tier="pro", model=cancer_model)
    inputs = _inputs(calls)

    assert inputs.shape == (300, 30) and inputs.dtype == schema.code_dtype
    assert np.all(inputs <= schema.top_code)
    # Uniform over each feature's own grid: a feature of 4,001 codes is spread over them all.
    widest = int(np.argmax(schema.top_code))
    assert inputs[:, widest].max() > 0.9 * schema.top_code[widest]
    # Answered in the model's own class labels (uniform measurements this large all look malignant to it).
    assert {label for call in calls for label in call.labels} == {"malignant"}


def test_new_natural_rows_of_a_table_are_other_patients_not_re_measurements(cancer_model, cancer_profile):
    rng = np.random.default_rng(0)
    parents = cancer_model.natural_pool[rng.integers(0, cancer_model.natural_pool.shape[0], 500)]

    drawn = cancer_model.vary(rng, parents)

    apart = np.linalg.norm(cancer_profile.embed(drawn) - cancer_profile.embed(parents), axis=1)
    # About one natural nearest-neighbour distance from the row they were drawn around: rarely a "small step".
    assert np.mean(apart <= cancer_profile.perturbation_radius) < 0.02
    assert np.mean(cancer_profile.distances(drawn) > cancer_profile.distance_q99) < 0.08


def test_a_walk_moves_each_feature_by_its_own_small_unit(cancer_model):
    rng = np.random.default_rng(1)
    start = cancer_model.heldout[:4].astype(np.int64)

    stepped = simulation.walk_one_step(
        rng, start, sent=set(), top_code=cancer_model.schema.top_code, unit=cancer_model.step_unit,
        dtype=cancer_model.schema.code_dtype,
    )  # fmt: skip

    moved = stepped.astype(np.int64) - start
    for row in moved:
        features = np.flatnonzero(row)
        assert 1 <= features.size <= 3
        assert np.all(np.abs(row[features]) % cancer_model.step_unit[features] == 0)


def _points(*scores: int) -> list[simulation.ProgressPoint]:
    from abuse.extraction import RiskResult

    return [
        simulation.ProgressPoint(queries=100 * (i + 1), at=float(i), result=RiskResult(score, (), "", 100 * (i + 1)))
        for i, score in enumerate(scores)
    ]


@pytest.mark.parametrize(
    ("scores", "frozen_at"),
    [
        ((10, 60, 85), 300),  # the freeze level
        ((10, 55, 60, 58, 52, 60, 70), 700),  # throttled at 200, still at the throttle level 500 inputs later
        ((55, 60, 30, 55, 60, 60, 60, 60, 60), 900),  # lifted at 300 (below 35): the count starts again at 400
        ((55, 45, 40, 45, 45, 45, 49), None),  # throttled, but never at the throttle level again: not escalated
    ],
)
def test_queries_to_freeze_follows_the_pipelines_escalation(scores, frozen_at):
    points = _points(*scores)

    assert (
        simulation.queries_to_freeze(points, throttle_score=50, freeze_score=80, clear_score=35, persistence_inputs=500)
        == frozen_at
    )
