"""The second demo model, `breast-cancer`: tabular, on scikit-learn's bundled Wisconsin diagnostic breast-cancer data
(569 rows, 30 real-valued features of very different scales, from 0.0008 to 4,254; 2 classes).

The full model is a logistic regression on standardised features (a scikit-learn pipeline, converted with skl2onnx),
chosen because it is the setting of Tramer et al.'s equation-solving attack (USENIX Security 2016, section 4.1):
from exact probabilities, d + 1 = 31 queries recover it, which is what the tiers exist to prevent. It is also what
a careful owner would pick here: a gradient-boosted ensemble does no better on 569 rows (about 96% held-out accuracy
for both) and is harder to explain to a clinician. The defended model is distilled from it by the same command an
operator runs (`manage.py distill_defended_model`).

The split follows the digits demo's rule: one seeded, per-class shuffle sets aside held-out rows (every held-out
figure) and public rows (the natural data an outside thief may own), and trains on the rest.

The input schema: each feature from 0 to a round bound above one and a half times its largest value in the data, on
a grid of 4 significant digits of that value (the data's own precision): e.g. `mean radius` 0..50 in steps of 0.01,
`mean area` 0..4,000 in steps of 1.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.ml.splits import stratified_split

SLUG = "breast-cancer"
DESCRIPTION = "Breast-cancer diagnosis from 30 measurements of a cell-nucleus image (Wisconsin diagnostic data)."
DATASET_NAME = "scikit-learn breast cancer (Wisconsin diagnostic)"
SPLIT_SEED = 0
TEST_FRACTION = 0.25
PUBLIC_FRACTION = 0.15


@dataclass(frozen=True, eq=False)
class TabularSplit:
    """Training, held-out and public rows (raw values) with their class indices, and what the registry records."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_public: np.ndarray
    y_public: np.ndarray
    feature_names: list[str]
    class_labels: list[str]
    provenance: dict[str, Any]


def _load() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from sklearn.datasets import load_breast_cancer  # the bundled copy: no network

    bunch = load_breast_cancer()
    return (
        np.asarray(bunch.data, dtype=np.float64),
        np.asarray(bunch.target, dtype=np.int64),
        [str(name) for name in bunch.feature_names],
        [str(name) for name in bunch.target_names],
    )


def load_split(*, seed: int = SPLIT_SEED) -> TabularSplit:
    """The demo's split by `stratified_split`'s rule (the digits demo's)."""
    X, y, names, labels = _load()
    indices = stratified_split(y, seed=seed, test_fraction=TEST_FRACTION, public_fraction=PUBLIC_FRACTION)
    training, test, public = indices.train, indices.test, indices.public
    digest = hashlib.sha256(np.ascontiguousarray(X).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
    provenance = {
        "dataset": DATASET_NAME,
        "sha256": digest,
        "rows": int(y.size),
        "train_rows": int(training.size),
        "test_rows": int(test.size),
        "public_rows": int(public.size),
        "split_seed": seed,
        "test_fraction": TEST_FRACTION,
        "public_fraction": PUBLIC_FRACTION,
        "stratified": True,
    }
    return TabularSplit(
        X_train=X[training],
        y_train=y[training],
        X_test=X[test],
        y_test=y[test],
        X_public=X[public],
        y_public=y[public],
        feature_names=names,
        class_labels=labels,
        provenance=provenance,
    )


def _round_bound(value: float) -> float:
    """A round number at or above `value`: 1, 2, 2.5, 4 or 5 times a power of ten."""
    magnitude = 10.0 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 4, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def input_schema() -> dict[str, Any]:
    """The model's input schema (see the module docstring)."""
    X, _, names, _ = _load()
    features = []
    for name, largest in zip(names, X.max(axis=0), strict=True):
        step = 10.0 ** (math.floor(math.log10(largest)) - 3)
        high = _round_bound(1.5 * largest)
        features.append({"name": name, "min": 0.0, "max": round(high, 12), "step": float(f"{step:.0e}")})
    return {"kind": "tabular", "features": features}


def train_full_model_onnx(split: TabularSplit) -> bytes:
    """The full model, a standardise-then-logistic-regression pipeline fitted on the training rows, as ONNX bytes
    with its probabilities as a float tensor named `probabilities`."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = LogisticRegression(C=1.0, max_iter=2000)
    pipeline = make_pipeline(StandardScaler(), regression).fit(split.X_train, split.y_train)
    model = to_onnx(
        pipeline,
        initial_types=[("input", FloatTensorType([None, split.X_train.shape[1]]))],
        options={id(regression): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return model.SerializeToString()
