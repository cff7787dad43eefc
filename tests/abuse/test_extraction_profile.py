"""abuse.extraction's reference profile, for any schema: its space (standardised features, pixels, principal
components), its thresholds on natural inputs, the grid entropy, and its JSON form."""

import json
import math

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from abuse.extraction import (
    FeatureSpace,
    InputProfile,
    constants,
    grid_entropy,
    ledoit_wolf_covariance,
    nearest_earlier_distances,
)
from abuse.simulation import TIERS, answer, digits_split

FREE = TIERS["free"].defenses


def _uniform(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, (n, 64), dtype=np.uint8)


# --- The reference profile ---------------------------------------------------------------------------------------


def test_ledoit_wolf_covariance_is_scikit_learns():
    X = digits_split().X_train

    assert np.allclose(ledoit_wolf_covariance(X), LedoitWolf().fit(X).covariance_, rtol=0, atol=1e-10)


def test_profile_threshold_admits_new_natural_digits_and_rejects_noise(profile):
    heldout = digits_split().X_test

    heldout_share = float(np.mean(profile.distances(heldout) > profile.distance_q99))
    assert heldout_share < 0.02  # digits the profile never saw: about the 1% the q99 promises
    assert profile.unnatural_baseline == max(heldout_share, 0.01)
    assert np.all(profile.distances(_uniform(500)) > profile.distance_q99)


def test_profile_measures_the_natural_ranges(profile, defended_model):
    heldout = digits_split().X_test.astype(np.uint8)
    _, served = answer(defended_model, FREE, heldout)

    assert profile.low_confidence_share == np.mean(np.asarray(served) < constants.LOW_CONFIDENCE)
    assert 2.0 < profile.entropy_q01 < profile.entropy_q99 < 3.3 < math.log2(17)
    assert profile.nn_distance_q01 == 10.0  # different writers' digits are never closer than this, 99% of the time
    assert profile.perturbation_radius == 5.0


def test_profile_round_trips_through_json(profile):
    stored = json.loads(json.dumps(profile.to_dict()))

    restored = InputProfile.from_dict(stored)

    assert stored["format"] == constants.PROFILE_FORMAT
    assert np.array_equal(restored.mean, profile.mean)
    assert np.array_equal(restored.precision, profile.precision)
    assert restored.to_dict() == profile.to_dict()


def test_profile_arrays_are_read_only(profile):
    with pytest.raises(ValueError, match="read-only"):
        profile.mean[0] = 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 1}, "unsupported input profile format 1"),
        ({"precision": [[1.0]]}, "inconsistent profile shapes"),
        ({"distance_q99": None}, "malformed input profile"),
    ],
)
def test_profile_from_dict_refuses_what_it_cannot_trust(profile, change, message):
    with pytest.raises(ValueError, match=message):
        InputProfile.from_dict({**profile.to_dict(), **change})


def test_profile_without_heldout_data_assumes_the_baselines():
    fitted = InputProfile.fit(digits_split().X_train, top_code=16)

    assert fitted.low_confidence_share is None
    assert fitted.unnatural_baseline == 0.01


def test_profile_needs_enough_rows():
    with pytest.raises(ValueError, match="at least 50 rows"):
        InputProfile.fit(np.zeros((49, 64)), top_code=16)


def test_grid_entropy_is_the_bits_of_the_value_histogram_on_the_digits_grid():
    blank = np.zeros(64)
    two_levels = np.repeat([0, 16], 32)
    sixteen_levels = np.repeat(np.arange(16), 4)

    assert grid_entropy(np.array([blank, two_levels, sixteen_levels]), 16).tolist() == [0.0, 1.0, 4.0]


def test_grid_entropy_reads_each_feature_on_its_own_grid():
    # Four features of 2, 101, 4,001 and 17 codes: the same place in each range is the same level.
    top = np.array([1, 100, 4_000, 16])
    at_bottom = np.zeros(4)
    at_top = top.astype(float)
    halfway = np.array([1, 50, 2_000, 8])  # a 2-code feature has no middle: its top code is level 16

    entropy = grid_entropy(np.array([at_bottom, at_top, halfway]), top)

    assert entropy.tolist() == [0.0, 0.0, pytest.approx(0.8112781244591328)]


def _tabular_reference(seed: int = 0) -> np.ndarray:
    """300 rows of two correlated measurements on very different grids (thousands of codes and tens)."""
    rng = np.random.default_rng(seed)
    size = rng.normal(0, 1, 300)
    return np.column_stack([2_000 + 300 * size, 40 + 6 * (size + 0.3 * rng.normal(0, 1, 300))]).round()


def test_a_tabular_profile_weighs_features_of_different_scales_alike():
    reference = _tabular_reference()
    profile = InputProfile.fit(reference, top_code=np.array([4_000, 80]), standardise=True)
    # Typical size, but the second measurement three spreads off what the first implies: off the natural relation.
    odd = np.array([[2_000, 40 + 3 * 6]])
    # A large first measurement with its matching second: far out, but along the natural relation.
    large_but_natural = np.array([[2_000 + 600, 40 + 12]])

    assert profile.space.scale.round().tolist() == pytest.approx(reference.std(axis=0).round().tolist())
    assert profile.distances(odd)[0] > profile.distance_q99 > profile.distances(large_but_natural)[0]
    # Standardised: the radius of a step is in spreads, not in whichever feature has the most codes.
    assert 0 < profile.perturbation_radius < 0.5


def test_a_tabular_profile_does_not_depend_on_the_grids_resolution():
    reference = _tabular_reference()
    coarse = InputProfile.fit(reference, top_code=np.array([4_000, 80]), standardise=True)
    fine = InputProfile.fit(reference * [10, 1], top_code=np.array([40_000, 80]), standardise=True)
    probes = np.array([[2_100, 45], [1_500, 60], [3_000, 30]])

    assert fine.distances(probes * [10, 1]) == pytest.approx(coarse.distances(probes))


def test_a_wide_image_is_measured_on_its_principal_components_and_the_rest():
    rng = np.random.default_rng(0)
    # 16x16 "images": smooth blobs, one per row, at random places (what natural pictures are: few directions).
    yy, xx = np.mgrid[0:16, 0:16]
    centres = rng.uniform(4, 12, (400, 2))
    blobs = np.exp(-((yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2) / 8)
    reference = np.rint(255 * blobs.reshape(400, 256))

    profile = InputProfile.fit(reference, top_code=255)
    noise = rng.integers(0, 256, (50, 256))

    assert profile.space.components.shape == (constants.PROFILE_MAX_DIMENSIONS, 256)
    assert profile.embed(reference[:3]).shape == (3, constants.PROFILE_MAX_DIMENSIONS + 1)
    assert np.all(profile.distances(noise) > profile.distance_q99)
    restored = InputProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored.distances(noise) == pytest.approx(profile.distances(noise))


def test_the_digits_profile_measures_in_pixels():
    # An 8x8 image has no more values than PROFILE_MAX_DIMENSIONS: its distances stay in intensity units.
    space = FeatureSpace.for_schema(digits_split().X_train, standardise=False)

    assert space.components is None
    assert np.array_equal(space.embed(digits_split().X_test[:5]), digits_split().X_test[:5])


def test_different_inputs_are_never_repeats_however_close_they_embed():
    # Neighbouring grid points of a finely quantised feature are 1/spread apart once standardised: below float32's
    # resolution at these norms, yet a step, not a repeat.
    points = np.array([[1_000.0, 0.0], [1_000.0, 0.0], [1_000.0 + 1e-5, 0.0]])

    distance, nearest = nearest_earlier_distances(points, ids=np.array([0, 0, 1]))

    assert distance[1] == np.inf and nearest[1] == -1  # an exact repeat of the first: skipped
    assert 0 < distance[2] < 1e-4 and nearest[2] == 0
