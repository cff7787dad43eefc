"""The digits split: reproducible, stratified, and neither the held-out nor the public rows reach training; the
natural variants the defended model trains on."""

import numpy as np
import pytest

from serving.ml.digits import DATASET_NAME, augment_digits, dataset_sha256, load_digits_split, shift_images

# The sha256 of scikit-learn's bundled digits (X as uint8, then y as uint8): pinned, so a changed data set is news.
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


def test_provenance_names_the_data_set_its_hash_and_row_counts_that_add_up(split):
    assert split.provenance == {
        "dataset": DATASET_NAME,
        "sha256": DIGITS_SHA256,
        "rows": 1797,
        "train_rows": 1078,
        "test_rows": 450,
        "public_rows": 269,
        "split_seed": 0,
        "test_fraction": 0.25,
        "public_fraction": 0.15,
        "stratified": True,
    }
    provenance = split.provenance
    assert provenance["train_rows"] + provenance["test_rows"] + provenance["public_rows"] == provenance["rows"]


def test_shapes_and_types(split):
    assert split.X_train.shape == (1078, 64) and split.X_train.dtype == np.float64
    assert split.X_test.shape == (450, 64) and split.X_test.dtype == np.float64
    assert split.X_public.shape == (269, 64) and split.X_public.dtype == np.float64
    assert split.y_train.shape == (1078,) and split.y_train.dtype == np.int64
    assert split.y_test.shape == (450,) and split.y_test.dtype == np.int64
    assert split.y_public.shape == (269,) and split.y_public.dtype == np.int64
    assert split.X_train.min() == 0 and split.X_train.max() == 16


def test_the_three_parts_are_disjoint_and_together_cover_every_row(split):
    assert np.intersect1d(split.train_index, split.test_index).size == 0
    assert np.intersect1d(split.train_index, split.public_index).size == 0
    assert np.intersect1d(split.public_index, split.test_index).size == 0
    everything = np.concatenate([split.train_index, split.test_index, split.public_index])
    assert np.array_equal(np.sort(everything), np.arange(1797))


def test_setting_public_rows_aside_leaves_the_held_out_rows_where_they_were(split):
    without_public = load_digits_split(seed=0, public_fraction=0.0)

    assert np.array_equal(without_public.test_index, split.test_index)
    assert without_public.public_index.size == 0
    assert np.array_equal(np.sort(np.concatenate([split.train_index, split.public_index])), without_public.train_index)


def test_the_rows_are_the_data_set_rows_at_those_indices(split):
    from sklearn.datasets import load_digits

    data = load_digits()
    assert np.array_equal(split.X_train, data.data[split.train_index])
    assert np.array_equal(split.X_test, data.data[split.test_index])
    assert np.array_equal(split.y_test, data.target[split.test_index])
    assert np.array_equal(split.X_public, data.data[split.public_index])
    assert np.array_equal(split.y_public, data.target[split.public_index])
    assert dataset_sha256(data.data, data.target) == DIGITS_SHA256


def test_split_is_stratified_by_class(split):
    train_counts = np.bincount(split.y_train, minlength=10)
    test_counts = np.bincount(split.y_test, minlength=10)
    public_counts = np.bincount(split.y_public, minlength=10)
    for label in range(10):
        total = train_counts[label] + test_counts[label] + public_counts[label]
        assert test_counts[label] == round(0.25 * total)
        assert public_counts[label] == round(0.15 * total)


def test_same_seed_same_split_other_seed_other_split(split):
    again = load_digits_split(seed=0)
    other = load_digits_split(seed=1)
    assert np.array_equal(again.test_index, split.test_index)
    assert not np.array_equal(other.test_index, split.test_index)
    assert other.provenance["split_seed"] == 1
    assert other.provenance["sha256"] == DIGITS_SHA256


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_test_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=fraction)


@pytest.mark.parametrize("fraction", [-0.1, 0.75, 0.9])
def test_public_fraction_must_leave_rows_to_train_on(fraction):
    with pytest.raises(ValueError, match="public_fraction"):
        load_digits_split(public_fraction=fraction)


def test_shift_moves_the_image_one_pixel_and_fills_with_background():
    image = np.zeros((1, 8, 8))
    image[0, 0, 0], image[0, 7, 7], image[0, 3, 4] = 1, 2, 3

    down_right = shift_images(image, np.array([1]), np.array([1]))
    up_left = shift_images(image, np.array([-1]), np.array([-1]))

    assert down_right[0, 1, 1] == 1 and down_right[0, 4, 5] == 3 and down_right.sum() == 4  # 2 fell off the edge
    assert up_left[0, 6, 6] == 2 and up_left[0, 2, 3] == 3 and up_left.sum() == 5
    assert np.array_equal(shift_images(image, np.array([0]), np.array([0])), image)


def test_augmented_digits_are_canonical_close_to_their_originals_and_seeded(split):
    base = split.X_train[:200]

    out = augment_digits(base, np.random.default_rng(0))

    assert out.shape == (200, 64) and out.dtype == np.uint8 and out.max() <= 16
    assert np.array_equal(out, augment_digits(base, np.random.default_rng(0)))
    assert not {row.tobytes() for row in out} & {row.tobytes() for row in base.astype(np.uint8)}
    # Another writer's digit: the ink moves by a few levels per pixel on average, not to another place.
    assert np.abs(out.astype(int) - base).mean() < 2.5
    assert abs(out.sum(axis=1).mean() / base.sum(axis=1).mean() - 1) < 0.1
