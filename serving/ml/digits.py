"""The demo data set: scikit-learn's bundled 8x8 digits (the UCI optdigits test set), split once, reproducibly.

scikit-learn is used only to read its bundled copy of the data (no network); training and inference are numpy.
Three disjoint parts, chosen by one seeded, per-class (stratified) shuffle:

- held-out rows, never used for training: every metric called "holdout" is measured on them;
- public rows, never used for training either: digits anyone may own, the natural data of an outside attacker
  (the red-team exercise). A model thief does not hold the owner's training set, only data like it; were these
  rows training rows, a copy would learn the owner's labels of its own training set, which no API can withhold;
- training rows: the owner's private data, all the rest.

`augment_digits` makes the natural variants (shifts, stroke weight, noise) that both demo models are trained on.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.ml.splits import stratified_split

DATASET_NAME = "scikit-learn digits (UCI optdigits test set)"
SLUG = "digits"
DESCRIPTION = "Handwritten digit classifier: 8x8 images as 64 pixel intensities 0..16."
DIGITS_ROWS = 1797
DIGITS_SIDE = 8
DIGITS_FEATURES = DIGITS_SIDE * DIGITS_SIDE
DIGITS_MAX = 16  # pixel intensities are integers 0..16
DIGITS_CLASSES = 10
CLASS_LABELS = [str(digit) for digit in range(DIGITS_CLASSES)]
# The digits model's input schema (`serving.input_schema`): an 8x8 grayscale image of intensities 0..16 in steps of
# 1. A picture is turned into one the way the data set was drawn: dark ink on light paper becomes high values, the
# ink is cropped to its box and centred with half a cell of margin each side, and its darkest stroke becomes 16.
INPUT_SCHEMA = {
    "kind": "image",
    "height": DIGITS_SIDE,
    "width": DIGITS_SIDE,
    "channels": 1,
    "min": 0,
    "max": DIGITS_MAX,
    "step": 1,
    "preprocessing": {"fit": "ink_box", "margin": 0.5 / DIGITS_SIDE, "invert": "auto", "normalize_peak": True},
}
# Public digits set aside per class: 269 rows, about a quarter of what the owner trains on.
DEFAULT_PUBLIC_FRACTION = 0.15


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """A train/held-out/public split. `train_index`, `test_index` and `public_index` are row numbers in the
    canonical data set (disjoint, together all 1797 rows); `provenance` is what the registry records for a model
    trained on this split."""

    X_train: np.ndarray  # float64 (n_train, 64), raw intensities 0..16
    y_train: np.ndarray  # int64 (n_train,)
    X_test: np.ndarray
    y_test: np.ndarray
    X_public: np.ndarray
    y_public: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    public_index: np.ndarray
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


def load_digits_split(
    *, seed: int = 0, test_fraction: float = 0.25, public_fraction: float = DEFAULT_PUBLIC_FRACTION
) -> DigitsSplit:
    """Split the digits data set into training, held-out and public parts by `stratified_split`'s rule."""
    X, y = _load_canonical()
    indices = stratified_split(y, seed=seed, test_fraction=test_fraction, public_fraction=public_fraction)
    train_index, test_index, public_index = indices.train, indices.test, indices.public
    provenance = {
        "dataset": DATASET_NAME,
        "sha256": dataset_sha256(X, y),
        "rows": int(y.size),
        "train_rows": int(train_index.size),
        "test_rows": int(test_index.size),
        "public_rows": int(public_index.size),
        "split_seed": seed,
        "test_fraction": test_fraction,
        "public_fraction": public_fraction,
        "stratified": True,
    }
    return DigitsSplit(
        X_train=X[train_index],
        y_train=y[train_index],
        X_test=X[test_index],
        y_test=y[test_index],
        X_public=X[public_index],
        y_public=y[public_index],
        train_index=train_index,
        test_index=test_index,
        public_index=public_index,
        provenance=provenance,
    )


def shift_images(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Shift each 8x8 image (n, 8, 8) by (dy, dx) in {-1, 0, 1} rows and columns, filling with background (0)."""
    out = np.zeros_like(images)
    side = DIGITS_SIDE
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            rows = np.flatnonzero((dy == sy) & (dx == sx))
            if rows.size == 0:
                continue
            ys, ye = max(sy, 0), side + min(sy, 0)
            xs, xe = max(sx, 0), side + min(sx, 0)
            out[rows, ys:ye, xs:xe] = images[rows, ys - sy : ye - sy, xs - sx : xe - sx]
    return out


def augment_digits(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One natural variant of each digit (n, 64), as another writer might draw it: shifted by one pixel one time
    in ten, strokes scaled by 0.8..1.2, and the inked pixels given noise of standard deviation 1; canonical uint8
    0..16. Pure numpy, deterministic for the generator's state."""
    n = X.shape[0]
    images = np.asarray(X, dtype=np.float64).reshape(n, DIGITS_SIDE, DIGITS_SIDE)
    shifted = rng.random(n) < 0.1
    dy = np.where(shifted, rng.integers(-1, 2, n), 0)
    dx = np.where(shifted, rng.integers(-1, 2, n), 0)
    flat = shift_images(images, dy, dx).reshape(n, DIGITS_FEATURES)
    scale = rng.uniform(0.8, 1.2, (n, 1))
    noise = rng.normal(0.0, 1.0, flat.shape) * (flat > 0)
    return np.clip(np.floor(flat * scale + noise + 0.5), 0, DIGITS_MAX).astype(np.uint8)
