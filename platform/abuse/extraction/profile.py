"""The reference distribution of a model's natural inputs, fitted on its reference data in a space its schema
chooses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from abuse.extraction.constants import (
    ENTROPY_LEVELS,
    LOW_CONFIDENCE,
    PROFILE_FORMAT,
    PROFILE_MAX_DIMENSIONS,
    PROFILE_NN_ROWS,
)
from abuse.extraction.distances import input_ids, pairwise_sq_distances
from serving.input_schema import InputSchema

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


def grid_entropy(codes: np.ndarray, top_code: np.ndarray | int) -> np.ndarray:
    """Entropy in bits of each row's histogram of its values on ENTROPY_LEVELS levels of each feature's grid (a
    canonical code c of a feature whose last code is `top_code` falls on level round(c / top_code * 16)): (n,).

    Natural inputs concentrate on a few levels (a digit is mostly background and full strokes; a tumour's 30
    measurements sit in the lower part of their ranges together); uniform noise spreads over all of them
    (about log2(17) = 4.1 bits for a wide input). On a grid of 17 levels (the digits' 0..16) a level is a code."""
    codes = np.asarray(codes)
    n = codes.shape[0]
    if n == 0:
        return np.zeros(0)
    top = np.maximum(np.asarray(top_code, dtype=np.float64), 1.0)
    rows = np.rint(codes.astype(np.float64) / top * (ENTROPY_LEVELS - 1)).astype(np.int64)
    rows = np.clip(rows, 0, ENTROPY_LEVELS - 1)
    offsets = (np.arange(n) * ENTROPY_LEVELS)[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=n * ENTROPY_LEVELS).reshape(n, ENTROPY_LEVELS)
    p = counts / rows.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(axis=1)


@dataclass(frozen=True, eq=False)
class FeatureSpace:
    """Where an input's distances are measured: its canonical codes, shifted by `center`, divided by `scale`, and
    (when `components` is set) projected on the reference data's leading principal directions, with the length of
    what the projection leaves out appended as one more coordinate (uniform noise on a large image is mostly
    that).

    Chosen from the schema by `FeatureSpace.for_schema`, never per model:
    - tabular inputs are standardised (each feature's codes by the reference data's spread, at least one grid step):
      a tumour's area in thousands and its smoothness in thousandths must weigh alike;
    - images keep their pixels' common unit (every pixel is the same kind of measurement);
    - an input of more than PROFILE_MAX_DIMENSIONS values is projected (a 32x32x3 image has 3,072): the O(n^2)
      distance work of a window and the covariance's inverse stay bounded, and natural images vary along few
      directions."""

    center: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    components: np.ndarray | None = None  # (k, d), orthonormal rows

    def __post_init__(self) -> None:
        for name in ("center", "scale", "components"):
            value = getattr(self, name)
            if value is None:
                continue
            array = np.array(value, dtype=np.float64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @classmethod
    def for_schema(cls, codes: np.ndarray, *, standardise: bool, step_floor: np.ndarray | None = None) -> FeatureSpace:
        """Fit on reference codes (n, d): standardised when `standardise` (the spread never below `step_floor`,
        default one code), projected when d > PROFILE_MAX_DIMENSIONS."""
        X = np.asarray(codes, dtype=np.float64)
        d = X.shape[1]
        if standardise:
            floor = np.ones(d) if step_floor is None else np.maximum(np.asarray(step_floor, dtype=np.float64), 1e-12)
            center, scale = X.mean(axis=0), np.maximum(X.std(axis=0), floor)
        else:
            center, scale = np.zeros(d), np.ones(d)
        components = None
        if d > PROFILE_MAX_DIMENSIONS:
            scaled = (X - center) / scale
            mean = scaled.mean(axis=0)
            _, _, vt = np.linalg.svd(scaled - mean, full_matrices=False)
            components = vt[:PROFILE_MAX_DIMENSIONS]
            center = center + mean * scale  # so that embed() centres before projecting
        return cls(center=center, scale=scale, components=components)

    @property
    def dimensions(self) -> int:
        return self.center.size if self.components is None else self.components.shape[0] + 1

    def embed(self, codes: np.ndarray) -> np.ndarray:
        """Canonical codes (n, d) in this space: (n, dimensions) float64."""
        X = (np.asarray(codes, dtype=np.float64) - self.center) / self.scale
        if self.components is None:
            return X
        projected = X @ self.components.T
        residual = np.sqrt(np.maximum((X * X).sum(axis=1) - (projected * projected).sum(axis=1), 0.0))
        return np.column_stack([projected, residual])

    def to_dict(self) -> dict[str, Any]:
        return {
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "components": None if self.components is None else self.components.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpace:
        center = np.asarray(data["center"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        components = None if data["components"] is None else np.asarray(data["components"], dtype=np.float64)
        if (
            center.ndim != 1
            or scale.shape != center.shape
            or (components is not None and (components.ndim != 2 or components.shape[1] != center.size))
        ):
            raise ValueError("inconsistent feature-space shapes")
        if not np.all(scale > 0):
            raise ValueError("a feature-space scale is not positive")
        return cls(center=center, scale=scale, components=components)


def _nearest_other_distances(X: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest *different* row (`ids`: equal for the same canonical input; a reference
    set that holds an input twice must not make two natural inputs look like a step apart), blocked to bound
    memory."""
    X = np.asarray(X, dtype=np.float32)
    norms = (X * X).sum(axis=1)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], 1024):
        block = slice(start, start + 1024)
        d2 = pairwise_sq_distances(X[block], X, norms[block], norms, ids[block], ids)
        d2[d2 == 0] = np.inf
        out[block] = np.sqrt(d2.min(axis=1))
    return out


@dataclass(frozen=True, eq=False)
class InputProfile:
    """The reference distribution of one model's natural inputs, fitted on its reference data (canonical codes).

    - `space`: where distances are measured (`FeatureSpace`: standardised features, an image's pixels, or their
      principal components); `mean`, `precision`: mean and inverse Ledoit-Wolf covariance of the reference rows
      in that space (Mahalanobis distance).
    - `top_code`: each feature's last grid code, for `grid_entropy`.
    - `distance_q99`: the 99th percentile of the reference rows' *out-of-fold* Mahalanobis distances (each row is
      measured under a profile fitted without it, 5 folds): a reference row's in-sample distance is optimistic,
      and the threshold is meant for inputs the profile has never seen.
    - `entropy_q01`, `entropy_q99`: the natural range of `grid_entropy`.
    - `low_confidence_share`: share of natural held-out inputs answered below `LOW_CONFIDENCE`, or None when no
      held-out answers were given (the scorer then assumes `LOW_CONFIDENCE_DEFAULT_BASELINE`).
    - `nn_distance_q01`: the 1% quantile of natural nearest-neighbour distances in `space` (each reference row to
      its nearest other row): two different natural inputs are practically never closer than this.
    - `unnatural_baseline`: share of natural held-out rows beyond `distance_q99` (about 0.01 when none are given).
    """

    space: FeatureSpace
    top_code: np.ndarray
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
        for name in ("top_code", "mean", "precision"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @classmethod
    def for_schema(
        cls,
        schema: InputSchema,
        reference: np.ndarray,
        *,
        heldout: np.ndarray | None = None,
        heldout_confidences: np.ndarray | None = None,
    ) -> InputProfile:
        """The profile of a model with this input schema, from its reference codes (and, optionally, natural
        held-out codes and the confidences a public tier serves for them): tabular features standardised, image
        pixels as they are (see `FeatureSpace`)."""
        return cls.fit(
            reference,
            top_code=schema.top_code,
            standardise=not schema.is_image,
            X_heldout=heldout,
            heldout_confidences=heldout_confidences,
        )

    @classmethod
    def fit(
        cls,
        X_train: np.ndarray,
        *,
        top_code: np.ndarray | int,
        standardise: bool = False,
        X_heldout: np.ndarray | None = None,
        heldout_confidences: np.ndarray | None = None,
        folds: int = 5,
    ) -> InputProfile:
        """Fit on natural reference codes (n, d). `X_heldout` (natural rows not in X_train) measures how many new
        natural inputs exceed the distance threshold; `heldout_confidences` are the *served* confidences of
        natural held-out inputs (after the tier's defenses), for the low-confidence baseline."""
        codes = np.asarray(X_train, dtype=np.float64)
        if codes.ndim != 2 or codes.shape[0] < 10 * folds:
            raise ValueError(f"X_train must be (n, d) with at least {10 * folds} rows, got {codes.shape}")
        space = FeatureSpace.for_schema(codes, standardise=standardise)
        X = space.embed(codes)
        mean = X.mean(axis=0)
        precision = np.linalg.inv(ledoit_wolf_covariance(X))
        fold_of = np.arange(X.shape[0]) % folds
        out_of_fold = np.empty(X.shape[0])
        for fold in range(folds):
            inside, outside = X[fold_of != fold], X[fold_of == fold]
            fold_precision = np.linalg.inv(ledoit_wolf_covariance(inside))
            out_of_fold[fold_of == fold] = _mahalanobis(outside, inside.mean(axis=0), fold_precision)
        distance_q99 = float(np.quantile(out_of_fold, 0.99))
        top = np.broadcast_to(np.asarray(top_code, dtype=np.float64), (codes.shape[1],))
        entropy = grid_entropy(np.rint(codes), top)
        # Nearest neighbours cost O(n^2): a seeded sample of at most PROFILE_NN_ROWS rows (a sparser sample only
        # makes the radius larger).
        chosen = np.random.default_rng(0).permutation(X.shape[0])[:PROFILE_NN_ROWS]
        ids = input_ids(np.rint(codes[chosen]))
        if X_heldout is not None and len(X_heldout):
            held = space.embed(np.asarray(X_heldout, dtype=np.float64))
            baseline = float(np.mean(_mahalanobis(held, mean, precision) > distance_q99))
        else:
            baseline = 0.01
        low = None
        if heldout_confidences is not None and len(heldout_confidences):
            low = float(np.mean(np.asarray(heldout_confidences, dtype=np.float64) < LOW_CONFIDENCE))
        return cls(
            space=space,
            top_code=top,
            mean=mean,
            precision=precision,
            distance_q99=distance_q99,
            entropy_q01=float(np.quantile(entropy, 0.01)),
            entropy_q99=float(np.quantile(entropy, 0.99)),
            low_confidence_share=low,
            nn_distance_q01=float(np.quantile(_nearest_other_distances(X[chosen], ids), 0.01)),
            unnatural_baseline=max(baseline, 0.01),
        )

    def embed(self, inputs: np.ndarray) -> np.ndarray:
        """Canonical inputs (n, d) in the profile's space (n, k), where every distance signal measures."""
        return self.space.embed(inputs)

    def distances(self, inputs: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of canonical `inputs` (n, d) from the natural distribution."""
        return self.distances_embedded(self.embed(inputs))

    def distances_embedded(self, embedded: np.ndarray) -> np.ndarray:
        """`distances` of inputs already in the profile's space."""
        return _mahalanobis(np.asarray(embedded, dtype=np.float64), self.mean, self.precision)

    def entropy(self, inputs: np.ndarray) -> np.ndarray:
        """`grid_entropy` of canonical `inputs` on this model's grid."""
        return grid_entropy(inputs, self.top_code)

    @property
    def perturbation_radius(self) -> float:
        """Half the 1% quantile of natural nearest-neighbour distances: closer than that, two inputs are one
        input and a small change of it, not two natural inputs."""
        return self.nn_distance_q01 / 2.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain lists and floats), for a PostgreSQL JSONField."""
        return {
            "format": PROFILE_FORMAT,
            "space": self.space.to_dict(),
            "top_code": [float(v) for v in self.top_code],
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
            space = FeatureSpace.from_dict(data["space"])
            top_code = np.asarray(data["top_code"], dtype=np.float64)
            mean = np.asarray(data["mean"], dtype=np.float64)
            precision = np.asarray(data["precision"], dtype=np.float64)
            if (
                mean.ndim != 1
                or mean.size != space.dimensions
                or precision.shape != (mean.size, mean.size)
                or top_code.shape != space.center.shape
            ):
                raise ValueError(
                    f"inconsistent profile shapes: mean {mean.shape}, precision {precision.shape},"
                    f" {space.dimensions} dimensions, top_code {top_code.shape}"
                )
            low = data["low_confidence_share"]
            return cls(
                space=space,
                top_code=top_code,
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
