"""The digits split: reproducible, stratified, and the held-out rows never reach training."""

import numpy as np
import pytest

from serving.ml.digits import DATASET_NAME, dataset_sha256, load_digits_split

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
        "train_rows": 1347,
        "test_rows": 450,
        "split_seed": 0,
        "test_fraction": 0.25,
        "stratified": True,
    }
    assert split.provenance["train_rows"] + split.provenance["test_rows"] == split.provenance["rows"]


def test_shapes_and_types(split):
    assert split.X_train.shape == (1347, 64) and split.X_train.dtype == np.float64
    assert split.X_test.shape == (450, 64) and split.X_test.dtype == np.float64
    assert split.y_train.shape == (1347,) and split.y_train.dtype == np.int64
    assert split.y_test.shape == (450,) and split.y_test.dtype == np.int64
    assert split.X_train.min() == 0 and split.X_train.max() == 16


def test_held_out_indices_do_not_overlap_the_training_indices_and_together_cover_every_row(split):
    assert np.intersect1d(split.train_index, split.test_index).size == 0
    assert np.array_equal(np.sort(np.concatenate([split.train_index, split.test_index])), np.arange(1797))


def test_the_rows_are_the_data_set_rows_at_those_indices(split):
    from sklearn.datasets import load_digits

    data = load_digits()
    assert np.array_equal(split.X_train, data.data[split.train_index])
    assert np.array_equal(split.X_test, data.data[split.test_index])
    assert np.array_equal(split.y_test, data.target[split.test_index])
    assert dataset_sha256(data.data, data.target) == DIGITS_SHA256


def test_split_is_stratified_by_class(split):
    train_counts = np.bincount(split.y_train, minlength=10)
    test_counts = np.bincount(split.y_test, minlength=10)
    for label in range(10):
        total = train_counts[label] + test_counts[label]
        assert test_counts[label] == round(0.25 * total)


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
