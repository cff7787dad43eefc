"""abuse.extraction: the reference profile, the distance statistics and each component of the extraction-risk score.

Windows here are built by hand (or from the real digits) so that each signal is checked on its own; the
end-to-end promise against simulated traffic is tests/abuse/test_calibration.py."""

import dataclasses
import math

import numpy as np
import pytest

from abuse import extraction
from abuse.extraction import (
    FREEZE_SCORE,
    THROTTLE_SCORE,
    QueryWindow,
    RiskResult,
    constants,
    extraction_risk,
    nearest_earlier_distances,
    perturbation_steps,
    prada_distances,
    prada_statistic,
    wilson_lower_bound,
)
from abuse.simulation import TIERS, answer, digits_split, perturbation_walker, window_from_calls

FREE = TIERS["free"].defenses


def _window(
    inputs: np.ndarray,
    *,
    labels: list[str] | np.ndarray | None = None,
    confidences: list[float] | np.ndarray | None = None,
    times: np.ndarray | None = None,
    errors: list[tuple[float, str]] = (),
    accounts: int = 1,
    total_inputs: int | None = None,
) -> QueryWindow:
    n = len(inputs)
    return QueryWindow(
        inputs=np.asarray(inputs, dtype=np.uint8).reshape(n, 64),
        labels=np.asarray(labels if labels is not None else ["0"] * n, dtype=str),
        confidences=np.asarray(confidences if confidences is not None else [0.99] * n, dtype=np.float64),
        times=np.asarray(times if times is not None else 1_000.0 + np.arange(n), dtype=np.float64),
        error_times=np.asarray([at for at, _ in errors], dtype=np.float64),
        error_kinds=[kind for _, kind in errors],
        n_classes=10,
        accounts=accounts,
        total_inputs=total_inputs,
    )


def _natural(defended_model, rows: np.ndarray) -> QueryWindow:
    """A window of natural digits with the answers the free tier serves for them."""
    rows = rows.astype(np.uint8)
    labels, confidences = answer(defended_model, FREE, rows)
    return _window(rows, labels=labels, confidences=confidences)


def _uniform(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, (n, 64), dtype=np.uint8)


def _unit(index: int, value: int) -> np.ndarray:
    row = np.zeros(64, dtype=np.uint8)
    row[index] = value
    return row


# --- Statistics --------------------------------------------------------------------------------------------------


def test_wilson_lower_bound_discounts_small_samples():
    z = constants.SHARE_CONFIDENCE_Z

    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(0, 50) == 0.0
    assert wilson_lower_bound(100, 100) == pytest.approx(100 / (100 + z * z))
    assert wilson_lower_bound(5, 10) < wilson_lower_bound(50, 100) < wilson_lower_bound(500, 1000) < 0.5


def test_nearest_earlier_distances_look_back_to_distinct_inputs_only():
    rows = np.array([_unit(0, 0), _unit(0, 1), _unit(0, 0), _unit(63, 16)])

    distance, nearest = nearest_earlier_distances(rows)

    # Row 2 repeats row 0: its nearest *distinct* earlier input is row 1. Row 3 is 16 from rows 0 and 2.
    assert distance.tolist() == [math.inf, 1.0, 1.0, 16.0]
    assert nearest.tolist() == [-1, 0, 1, 0]


def test_perturbation_steps_measure_chains_and_families():
    walk = [np.zeros(64, dtype=np.uint8)]
    for pixel in range(1, 6):  # each input one level away from the previous one
        walk.append(walk[-1].copy())
        walk[-1][pixel] = 1
    far = _unit(63, 16)
    near_start = _unit(40, 2)  # 2 from the first input

    measured = perturbation_steps(np.array([*walk, far, near_start]), radius=5.0)

    assert measured.steps.tolist() == [False, True, True, True, True, True, False, True]
    assert measured.longest_chain == 5
    assert measured.largest_family == 7  # the start, its five-step walk and the step beside it


def test_prada_distances_follow_the_papers_growing_sets():
    x0 = np.zeros(64, dtype=np.uint8)
    x1, x2, x3 = _unit(0, 3), _unit(1, 2), _unit(2, 10)
    y0 = _unit(5, 16)
    y1 = y0.copy()
    y1[6] = 4
    inputs = np.array([x0, y0, x1, x2, y1, x3, x2, x1])
    labels = np.array(["0", "1", "0", "0", "1", "0", "0", "0"])

    distances = prada_distances(inputs, labels)

    # x1: 3 from G_0 = {x0}, joins (T_0 = 0), then T_0 = mean - std = 3. x2: 2 from x0, stays out (2 <= 3).
    # y1: 4 from G_1 = {y0}. x3: 10, joins. The repeated x2 is again 2 from G_0 (x2 never joined), while the
    # repeated x1 is a member: distance 0, an exact repeat, adds nothing.
    assert distances.tolist() == [3.0, 2.0, 4.0, 10.0, 2.0]


def test_prada_statistic_waits_for_100_distances_and_flags_no_spread():
    assert prada_statistic(np.arange(99.0)) is None
    assert prada_statistic(np.full(200, 2.0)) == 0.0
    assert prada_statistic(np.random.default_rng(0).normal(20, 5, 1000)) > 0.99


def test_prada_finds_natural_digits_normal(defended_model):
    split = digits_split()
    window = _natural(defended_model, split.X_test)

    w = prada_statistic(prada_distances(window.inputs, window.labels))

    assert w > constants.PRADA_DELTA


# --- Components --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "points"), [(1_000, 0.0), (1_500, 0.0), (3_873, 12.5), (10_000, 25.0), (10**6, 25.0)]
)
def test_volume_counts_from_one_and_a_half_times_normal_on_a_log_scale(profile, total, points):
    window = _window(np.zeros((10, 64)), total_inputs=total)

    volume = extraction_risk(window, profile, normal_volume=1_000).component("volume")

    assert volume.value == total / 1_000
    assert volume.points == pytest.approx(points, abs=0.01)


def test_a_huge_honest_customer_is_not_even_throttled(profile, defended_model):
    window = _natural(defended_model, digits_split().X_test)
    huge = dataclasses.replace(window, total_inputs=1_000_000)

    result = extraction_risk(huge, profile, normal_volume=500)

    assert result.component("volume").points == constants.VOLUME_MAX_POINTS
    assert result.score < THROTTLE_SCORE


def test_no_signal_alone_reaches_the_freeze_level_and_the_ambiguous_ones_cannot_throttle_together():
    ambiguous = constants.VOLUME_MAX_POINTS + constants.UNIQUE_MAX_POINTS + constants.COVERAGE_MAX_POINTS
    caps = [
        constants.VOLUME_MAX_POINTS,
        constants.UNIQUE_MAX_POINTS,
        constants.UNNATURAL_MAX_POINTS,
        constants.ENTROPY_MAX_POINTS,
        constants.LOW_CONFIDENCE_MAX_POINTS,
        constants.COVERAGE_MAX_POINTS,
        constants.PRADA_MAX_POINTS,
        constants.PERTURBATION_MAX_POINTS,
        constants.RECON_MAX_POINTS,
        constants.LINKED_MAX_POINTS,
    ]

    assert ambiguous < THROTTLE_SCORE
    assert max(caps) < FREEZE_SCORE
    # Unnatural inputs with every ambiguous signal at its cap: throttled and reviewed, not frozen.
    assert ambiguous + constants.UNNATURAL_MAX_POINTS < FREEZE_SCORE


def test_uniform_noise_is_unnatural_and_high_entropy(profile):
    result = extraction_risk(_window(_uniform(200)), profile, normal_volume=500)

    assert result.component("unnatural_inputs").value == 1.0
    assert result.component("unnatural_inputs").points == constants.UNNATURAL_MAX_POINTS
    assert result.component("input_entropy").value == 1.0
    assert result.component("input_entropy").points == constants.ENTROPY_MAX_POINTS


def test_a_developer_trying_a_few_random_arrays_is_not_an_attack(profile):
    result = extraction_risk(_window(_uniform(20)), profile, normal_volume=500)

    # 20 of 100 inputs' worth of evidence: a fifth of the points.
    assert result.component("unnatural_inputs").points == pytest.approx(constants.UNNATURAL_MAX_POINTS / 5)
    assert result.score < THROTTLE_SCORE


def test_natural_digits_are_neither_unnatural_nor_odd_in_entropy(profile, defended_model):
    result = extraction_risk(_natural(defended_model, digits_split().X_test), profile, normal_volume=500)

    assert result.component("unnatural_inputs").points == 0.0
    assert result.component("input_entropy").points == 0.0
    assert result.component("low_confidence").points == 0.0
    assert result.component("perturbation_walk").points == 0.0
    assert result.component("prada").points == 0.0


def test_low_confidence_is_measured_against_the_natural_share(profile):
    confidences = [0.3, 0.9] * 100

    measured = extraction_risk(_window(_uniform(200), confidences=confidences), profile, normal_volume=500)
    assumed = extraction_risk(_window(_uniform(200), confidences=confidences), None, normal_volume=500)

    assert measured.component("low_confidence").value == 0.5
    assert measured.component("low_confidence").points == constants.LOW_CONFIDENCE_MAX_POINTS
    assert measured.component("low_confidence").detail == "50% of answers have confidence below 0.6 (natural: 10%)"
    assert assumed.component("low_confidence").detail.endswith("(natural: 10%, assumed)")


def test_unique_inputs_count_fully_from_500_inputs(profile):
    distinct = extraction_risk(_window(_uniform(500)), profile, normal_volume=500).component("unique_inputs")
    halved = extraction_risk(_window(np.tile(_uniform(250), (2, 1))), profile, normal_volume=500)

    assert (distinct.value, distinct.points) == (1.0, constants.UNIQUE_MAX_POINTS)
    assert halved.component("unique_inputs").value == 0.5
    assert halved.component("unique_inputs").points == 0.0


def test_class_coverage_rewards_even_coverage_lightly(profile):
    even = [str(i % 10) for i in range(200)]

    covered = extraction_risk(_window(_uniform(200), labels=even), profile, normal_volume=500)
    one_class = extraction_risk(_window(_uniform(200)), profile, normal_volume=500)

    assert covered.component("class_coverage").value == pytest.approx(1.0)
    assert covered.component("class_coverage").points == pytest.approx(constants.COVERAGE_MAX_POINTS)
    assert one_class.component("class_coverage").points == 0.0


def test_a_walk_of_small_steps_from_one_image_scores_the_perturbation_signal(profile, defended_model):
    calls = perturbation_walker(seed=3, queries=500, tier="free", model=defended_model)

    walk = extraction_risk(window_from_calls(calls), profile, normal_volume=500).component("perturbation_walk")

    assert walk.value > 0.95
    assert walk.points == constants.PERTURBATION_MAX_POINTS


RECON = [
    "unknown:not_found",
    "predict:method_not_allowed",
    "models:method_not_allowed",
    "usage:method_not_allowed",
    "predict:model_not_found",
    "predict:invalid_input",
]


def _recon(profile, errors: list[tuple[float, str]]) -> extraction.Component:
    window = _window(_uniform(200), times=10_000.0 + np.arange(200), errors=errors)
    return extraction_risk(window, profile, normal_volume=500).component("reconnaissance")


def test_a_burst_of_varied_errors_before_the_traffic_is_reconnaissance(profile):
    burst = _recon(profile, [(9_000.0 + 10 * i, kind) for i, kind in enumerate(RECON)])

    assert (burst.value, burst.points) == (6.0, constants.RECON_MAX_POINTS)


@pytest.mark.parametrize(
    ("errors", "kinds"),
    [
        # After the traffic started: a client with a bug, not a map of the API.
        ([(11_000.0 + i, kind) for i, kind in enumerate(RECON)], 0.0),
        # A developer wiring up the client: a few kinds of mistake.
        (
            [
                (9_000.0, "predict:invalid_input"),
                (9_030.0, "unknown:not_found"),
                (9_050.0, "predict:payload_too_large"),
            ],
            3.0,
        ),
        # Throttling is the quota's doing.
        ([(9_000.0 + i, "predict:rate_limited") for i in range(10)], 0.0),
        # Varied, but hours apart: no burst.
        ([(9_000.0 - 3_600.0 * i, kind) for i, kind in enumerate(RECON)], 1.0),
    ],
)
def test_errors_that_are_not_a_reconnaissance_burst_score_nothing(profile, errors, kinds):
    recon = _recon(profile, errors)

    assert (recon.value, recon.points) == (kinds, 0.0)


def test_early_errors_must_be_most_of_the_errors(profile):
    early = [(9_000.0 + i, kind) for i, kind in enumerate(RECON)]
    steady = [(10_150.0 + i, "predict:invalid_input") for i in range(10)]

    assert _recon(profile, early + steady).points == 0.0


def test_linked_accounts_count_a_rings_merged_volume_against_one_organization(profile):
    def linked(accounts: int, total: int) -> extraction.Component:
        window = _window(np.zeros((10, 64)), accounts=accounts, total_inputs=total)
        return extraction_risk(window, profile, normal_volume=500).component("linked_accounts")

    assert linked(1, 5_000).points == 0.0
    assert linked(5, 500).points == 0.0
    assert linked(5, 1_250).points == constants.LINKED_MAX_POINTS
    assert linked(5, 1_250).detail == (
        "5 linked accounts together sent 1,250 inputs, 2.5x what one organization normally sends"
    )


# --- The score ---------------------------------------------------------------------------------------------------


def test_the_score_is_the_rounded_sum_of_points_with_the_strongest_reason_first(profile):
    result = extraction_risk(_window(_uniform(300)), profile, normal_volume=500)
    strongest = max(result.components, key=lambda c: c.points)

    assert isinstance(result, RiskResult)
    assert result.score == round(sum(c.points for c in result.components))
    assert result.queries == 300
    assert result.explanation.startswith(f"Extraction risk {result.score}/100 (")
    assert result.explanation.split("Reasons, strongest first: ")[1].startswith(strongest.detail)
    assert [c.name for c in result.components] == [
        "volume",
        "linked_accounts",
        "unique_inputs",
        "unnatural_inputs",
        "input_entropy",
        "low_confidence",
        "class_coverage",
        "prada",
        "perturbation_walk",
        "reconnaissance",
    ]


def test_the_score_is_capped_at_100(profile):
    errors = [(0.0 + i, kind) for i, kind in enumerate(RECON)]
    window = _window(_uniform(2_000), confidences=[0.3] * 2_000, errors=errors, total_inputs=100_000)

    assert extraction_risk(window, profile, normal_volume=500).score == 100


def test_an_empty_window_scores_zero(profile):
    result = extraction_risk(_window(np.zeros((0, 64))), profile, normal_volume=500)

    assert result.score == 0
    assert result.queries == 0
    assert result.explanation == (
        "Extraction risk 0/100 (no action). Nothing in this traffic looks like model extraction."
    )


def test_without_a_profile_the_distribution_signals_are_skipped_and_said_to_be(defended_model):
    calls = perturbation_walker(seed=3, queries=500, tier="free", model=defended_model)

    result = extraction_risk(window_from_calls(calls), None, normal_volume=500)

    assert result.component("unnatural_inputs").points == 0.0
    assert result.component("unnatural_inputs").detail == "not measured: the model has no reference profile"
    assert result.component("input_entropy").points == 0.0
    # A step is "small" only against the model's natural spread, which only a profile knows.
    assert result.component("perturbation_walk").detail == "not measured: the model has no reference profile"
    # The signals that need no profile still work (PRADA's W does not depend on the inputs' unit).
    assert result.component("unique_inputs").points > 0
    assert result.component("prada").detail.startswith("distances between queries of the same class")
    assert result.explanation.endswith(
        "This model has no reference profile of natural inputs, so unnatural inputs, their spread over the grid and"
        " perturbation walks were not measured."
    )


def test_only_the_latest_5000_inputs_are_scored(profile, defended_model):
    natural = digits_split().X_test.astype(np.uint8)
    rows = np.concatenate([_uniform(1_000), np.tile(natural, (12, 1))[:5_000]])

    result = extraction_risk(_window(rows), profile, normal_volume=500)

    assert result.queries == 6_000
    assert result.component("unnatural_inputs").value == pytest.approx(
        float(np.mean(profile.distances(rows[-5_000:]) > profile.distance_q99))
    )
    assert result.component("unnatural_inputs").points == 0.0


def test_extraction_risk_refuses_a_window_it_cannot_read(profile):
    with pytest.raises(ValueError, match="normal_volume must be positive"):
        extraction_risk(_window(_uniform(5)), profile, normal_volume=0)
    with pytest.raises(ValueError, match="one entry per input"):
        QueryWindow(
            inputs=_uniform(3),
            labels=np.array(["1"]),
            confidences=np.zeros(3),
            times=np.zeros(3),
            error_times=np.zeros(0),
            error_kinds=[],
            n_classes=10,
        )
