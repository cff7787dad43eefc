"""The demo data set: scikit-learn's bundled 8x8 digits (the UCI optdigits test set), split once, reproducibly.

scikit-learn is used only to read its bundled copy of the data (no network); training and inference are numpy.
The held-out rows are chosen by a seeded, per-class (stratified) shuffle and are never used for training: every
metric called "holdout" is measured on them.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

DATASET_NAME = "scikit-learn digits (UCI optdigits test set)"
DIGITS_ROWS = 1797
DIGITS_FEATURES = 64
DIGITS_MAX = 16  # pixel intensities are integers 0..16
DIGITS_CLASSES = 10


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """A train/held-out split. `train_index` / `test_index` are row numbers in the canonical data set (disjoint,
    together all 1797 rows); `provenance` is what the registry records for a model trained on this split."""

    X_train: np.ndarray  # float64 (n_train, 64), raw intensities 0..16
    y_train: np.ndarray  # int64 (n_train,)
    X_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    provenance: dict[str, Any]


def dataset_sha256(X: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the canonical bytes of the data set: X as uint8 in C order (rows x 64), then y as uint8.
    Anyone holding the same data computes the same hash, whatever float type they loaded it as."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _load_canonical() -> tuple[np.ndarray, np.ndarray]:
    # Imported here so that inference (which never needs the data set) does not import scikit-learn.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    # The hash and the 0..16 coarsening both assume integer intensities; refuse a data set that breaks that.
    if X.shape != (DIGITS_ROWS, DIGITS_FEATURES) or y.shape != (DIGITS_ROWS,):
        raise ValueError(f"Unexpected digits data set shape {X.shape} / {y.shape}.")
    if not np.array_equal(X, np.round(X)) or X.min() < 0 or X.max() > DIGITS_MAX:
        raise ValueError("Digits intensities are not integers in 0..16.")
    return X, y


def load_digits_split(*, seed: int = 0, test_fraction: float = 0.25) -> DigitsSplit:
    """Split the digits data set into train and held-out parts, stratified by class: each class contributes
    round(test_fraction * its count) held-out rows, picked by a shuffle seeded with `seed`. Same seed, same split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be strictly between 0 and 1.")
    X, y = _load_canonical()
    rng = np.random.default_rng(seed)
    test_parts = []
    for label in np.unique(y):  # sorted, so the random stream is consumed in the same order every time
        members = np.flatnonzero(y == label)
        n_test = round(test_fraction * members.size)
        test_parts.append(rng.permutation(members)[:n_test])
    test_index = np.sort(np.concatenate(test_parts))
    is_test = np.zeros(y.size, dtype=bool)
    is_test[test_index] = True
    train_index = np.flatnonzero(~is_test)
    provenance = {
        "dataset": DATASET_NAME,
        "sha256": dataset_sha256(X, y),
        "rows": int(y.size),
        "train_rows": int(train_index.size),
        "test_rows": int(test_index.size),
        "split_seed": seed,
        "test_fraction": test_fraction,
        "stratified": True,
    }
    return DigitsSplit(
        X_train=X[train_index],
        y_train=y[train_index],
        X_test=X[test_index],
        y_test=y[test_index],
        train_index=train_index,
        test_index=test_index,
        provenance=provenance,
    )
