"""The demo models' one rule for splitting a labelled data set: a seeded, per-class (stratified) shuffle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SplitIndices:
    """Disjoint, sorted row numbers that together cover the data set."""

    train: np.ndarray
    test: np.ndarray
    public: np.ndarray


def stratified_split(y: np.ndarray, *, seed: int, test_fraction: float, public_fraction: float) -> SplitIndices:
    """Each class gives round(test_fraction * its count) held-out rows, then round(public_fraction * its count)
    public rows, taken in that order from one shuffle seeded with `seed`; the rest train. Same arguments, same
    split; the held-out rows depend only on the seed and `test_fraction`, so setting public rows aside never moves
    the yardstick. Raises ValueError when the fractions leave nothing to train on."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be strictly between 0 and 1.")
    if not 0.0 <= public_fraction < 1.0 - test_fraction:
        raise ValueError("public_fraction must be at least 0 and leave rows to train on after the held-out rows.")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    test_parts, public_parts = [], []
    for label in np.unique(y):  # sorted, so the random stream is consumed in the same order every time
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = round(test_fraction * members.size)
        n_public = round(public_fraction * members.size)
        test_parts.append(members[:n_test])
        public_parts.append(members[n_test : n_test + n_public])
    test = np.sort(np.concatenate(test_parts))
    public = np.sort(np.concatenate(public_parts))
    train = np.setdiff1d(np.arange(y.size), np.concatenate([test, public]))
    return SplitIndices(train=train, test=test, public=public)
