"""The reference distribution of natural inputs, fitted on a model's training data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from abuse.extraction.constants import LOW_CONFIDENCE, PERTURBATION_RADIUS_MAX, PROFILE_FORMAT, PROFILE_NN_ROWS
from abuse.extraction.distances import pairwise_sq_distances

# --- Reference profile -------------------------------------------------------------------------------------------


def ledoit_wolf_covariance(X: np.ndarray) -> np.ndarray:
    """The Ledoit-Wolf shrinkage covariance of X (n, d): (1 - s) * S + s * mu * I with the optimal s (Ledoit & Wolf,
    "A well-conditioned estimator for large-dimensional covariance matrices", 2004; same formula as scikit-learn's
    `LedoitWolf`). Digits have always-blank border pixels, so the sample covariance S is singular; shrinking
    towards mu * I makes it invertible while keeping the directions the data actually varies in."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / n
    mu = float(np.trace(S)) / d
    X2 = Xc**2
    beta_sum = float(np.sum(X2.T @ X2))
    delta_sum = float(np.sum(S**2))
    beta = (beta_sum / n - delta_sum) / (d * n)
    delta = (delta_sum - 2.0 * mu * float(np.trace(S)) + d * mu**2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    return (1.0 - shrinkage) * S + shrinkage * mu * np.eye(d)


def pixel_entropy(inputs: np.ndarray, *, levels: int = 17) -> np.ndarray:
    """Entropy in bits of each row's histogram of pixel values (integers 0..levels-1): (n,)."""
    rows = np.clip(np.asarray(inputs, dtype=np.int64), 0, levels - 1)
    n = rows.shape[0]
    if n == 0:
        return np.zeros(0)
    offsets = (np.arange(n) * levels)[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=n * levels).reshape(n, levels)
    p = counts / rows.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(axis=1)


def _nearest_other_distances(X: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row (leave-one-out), blocked to bound memory."""
    X = np.asarray(X, dtype=np.float32)
    norms = (X * X).sum(axis=1)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], 1024):
        d2 = pairwise_sq_distances(X[start : start + 1024], X, norms[start : start + 1024], norms)
        rows = np.arange(d2.shape[0])
        d2[rows, start + rows] = np.inf
        out[start : start + 1024] = np.sqrt(d2.min(axis=1))
    return out


@dataclass(frozen=True, eq=False)
class InputProfile:
    """The reference distribution of natural inputs for one model, fitted on its training data.

    - `mean`, `precision`: mean and inverse Ledoit-Wolf covariance of the training rows (Mahalanobis distance).
    - `distance_q99`: the 99th percentile of the training rows' *out-of-fold* Mahalanobis distances (each row is
      measured under a profile fitted without it, 5 folds): a training row's in-sample distance is optimistic,
      and the threshold is meant for inputs the profile has never seen.
    - `entropy_q01`, `entropy_q99`: the natural range of `pixel_entropy`.
    - `low_confidence_share`: share of natural held-out inputs answered below `LOW_CONFIDENCE`, or None when no
      held-out answers were given (the scorer then assumes `LOW_CONFIDENCE_DEFAULT_BASELINE`).
    - `nn_distance_q01`: the 1% quantile of natural nearest-neighbour distances (each training row to its nearest
      other row): two different natural inputs are practically never closer than this.
    - `unnatural_baseline`: share of natural held-out rows beyond `distance_q99` (about 0.01 when none are given).
    """

    mean: np.ndarray
    precision: np.ndarray
    distance_q99: float
    entropy_q01: float
    entropy_q99: float
    low_confidence_share: float | None
    nn_distance_q01: float
    unnatural_baseline: float

    def __post_init__(self) -> None:
        # One profile is shared by every scoring run of a worker: its arrays must never change under them.
        for name in ("mean", "precision"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @classmethod
    def fit(
        cls,
        X_train: np.ndarray,
        *,
        X_heldout: np.ndarray | None = None,
        heldout_confidences: np.ndarray | None = None,
        folds: int = 5,
    ) -> InputProfile:
        """Fit on natural training rows (n, d). `X_heldout` (natural rows not in X_train) measures how many new
        natural inputs exceed the distance threshold; `heldout_confidences` are the *served* confidences of
        natural held-out inputs (after the tier's defenses), for the low-confidence baseline."""
        X = np.asarray(X_train, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 10 * folds:
            raise ValueError(f"X_train must be (n, d) with at least {10 * folds} rows, got {X.shape}")
        mean = X.mean(axis=0)
        precision = np.linalg.inv(ledoit_wolf_covariance(X))
        fold_of = np.arange(X.shape[0]) % folds
        out_of_fold = np.empty(X.shape[0])
        for fold in range(folds):
            inside, outside = X[fold_of != fold], X[fold_of == fold]
            fold_precision = np.linalg.inv(ledoit_wolf_covariance(inside))
            out_of_fold[fold_of == fold] = _mahalanobis(outside, inside.mean(axis=0), fold_precision)
        distance_q99 = float(np.quantile(out_of_fold, 0.99))
        entropy = pixel_entropy(np.round(X).astype(np.int64))
        # Nearest neighbours cost O(n^2): a seeded sample of at most PROFILE_NN_ROWS rows (a sparser sample only
        # makes the radius larger, and it is capped by PERTURBATION_RADIUS_MAX).
        sample = (
            X[np.random.default_rng(0).permutation(X.shape[0])[:PROFILE_NN_ROWS]] if X.shape[0] > PROFILE_NN_ROWS else X
        )
        if X_heldout is not None and len(X_heldout):
            baseline = float(
                np.mean(_mahalanobis(np.asarray(X_heldout, dtype=np.float64), mean, precision) > distance_q99)
            )
        else:
            baseline = 0.01
        low = None
        if heldout_confidences is not None and len(heldout_confidences):
            low = float(np.mean(np.asarray(heldout_confidences, dtype=np.float64) < LOW_CONFIDENCE))
        return cls(
            mean=mean,
            precision=precision,
            distance_q99=distance_q99,
            entropy_q01=float(np.quantile(entropy, 0.01)),
            entropy_q99=float(np.quantile(entropy, 0.99)),
            low_confidence_share=low,
            nn_distance_q01=float(np.quantile(_nearest_other_distances(sample), 0.01)),
            unnatural_baseline=max(baseline, 0.01),
        )

    def distances(self, inputs: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of `inputs` (n, d) from the natural distribution."""
        return _mahalanobis(np.asarray(inputs, dtype=np.float64), self.mean, self.precision)

    @property
    def perturbation_radius(self) -> float:
        return min(PERTURBATION_RADIUS_MAX, self.nn_distance_q01 / 2.0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain lists and floats), for a PostgreSQL JSONField."""
        return {
            "format": PROFILE_FORMAT,
            "mean": [float(v) for v in self.mean],
            "precision": [[float(v) for v in row] for row in self.precision],
            "distance_q99": self.distance_q99,
            "entropy_q01": self.entropy_q01,
            "entropy_q99": self.entropy_q99,
            "low_confidence_share": self.low_confidence_share,
            "nn_distance_q01": self.nn_distance_q01,
            "unnatural_baseline": self.unnatural_baseline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputProfile:
        """Rebuild from `to_dict`'s form. Raises ValueError on another format or inconsistent shapes."""
        if data.get("format") != PROFILE_FORMAT:
            raise ValueError(f"unsupported input profile format {data.get('format')!r}; expected {PROFILE_FORMAT}")
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            precision = np.asarray(data["precision"], dtype=np.float64)
            if mean.ndim != 1 or precision.shape != (mean.size, mean.size):
                raise ValueError(f"inconsistent profile shapes: mean {mean.shape}, precision {precision.shape}")
            low = data["low_confidence_share"]
            return cls(
                mean=mean,
                precision=precision,
                distance_q99=float(data["distance_q99"]),
                entropy_q01=float(data["entropy_q01"]),
                entropy_q99=float(data["entropy_q99"]),
                low_confidence_share=None if low is None else float(low),
                nn_distance_q01=float(data["nn_distance_q01"]),
                unnatural_baseline=float(data["unnatural_baseline"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed input profile: {exc!r}") from exc


def _mahalanobis(X: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    centred = X - mean
    return np.sqrt(np.maximum(((centred @ precision) * centred).sum(axis=1), 0.0))
