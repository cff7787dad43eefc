"""Output defenses against model extraction: what a public tier's answer may reveal, as pure functions.

Extraction attacks (Tramèr et al. 2016) learn most from precise confidences and from many answers; these defenses
reduce what each answer carries while keeping the label right:

- **top-1 or top-k**: the label alone, or the k best labels with their confidences;
- **coarse confidences**: rounded to N decimals, or reduced to a bucket's lower edge;
- **keyed logit noise**: Gaussian noise whose seed is a keyed hash of the *canonical input* under a server secret, so a
  repeated query — from one key or from a thousand — gets the very same noise and averaging gains nothing; the
  top-1 label is then put back to the model's own unless the input falls in a keyed "flip" fraction (default 0);
- **watermarking** (after DAWN, Szyller et al. 2021, keyed on regions rather than single inputs): the inputs of a
  keyed fraction of input regions (default 1.5%) are answered with the region's keyed class; the caller records which
  key received it, and `serving.watermark_verification.verify_watermark` later proves that a stolen model learned it.

Everything here is numpy in, plain data out: no Django, no database, no clock, no global random state. The caller
(the prediction service) chooses the `DefenseConfig` from the tier — `DefenseConfig.none()` for enterprise keys,
whose answers are never perturbed — and decides which fields of a `DefendedPrediction` the tier shows. Inputs arrive
in their canonical form (`serving.input_schema`: one unsigned grid index per feature), whatever the model's schema.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from typing import Any

import numpy as np

from serving.watermark import DEFAULT_WATERMARK_FRACTION, RegionWatermark, keyed_row_digests

__all__ = [
    "DefendedPrediction",
    "DefenseConfig",
    "apply_defenses",
    "input_digest",
    "softmax",
]

NOISE_DOMAIN = b"moat.noise.v2\x00"  # v2: keyed BLAKE2b (v1 was HMAC-SHA256)
MAX_DECIMALS = 6

_TWO_32 = float(2**32)
_MAX_DIGEST = 64  # BLAKE2b's longest digest


# --- Canonical inputs ----------------------------------------------------------------------------------------------


def check_canonical_rows(rows: np.ndarray) -> np.ndarray:
    """`rows` as a C-contiguous 2-D array of unsigned grid indices (`InputSchema.codes`), or ValueError: keyed
    decisions hash these bytes, so floats are refused rather than converted."""
    rows = np.asarray(rows)
    if rows.dtype.kind != "u":
        raise ValueError(f"canonical inputs are unsigned grid indices, got {rows.dtype}; use schema.codes first")
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2:
        raise ValueError(f"canonical inputs must have shape (n, features), got {rows.shape}")
    return np.ascontiguousarray(rows)


def input_digest(row: np.ndarray) -> bytes:
    """SHA-256 of one canonical row's bytes (32 raw bytes): the query log's input hash. Unkeyed on purpose — the
    log must match the same input across secret rotations; it is not a secret, only an identifier."""
    rows = check_canonical_rows(row)
    if rows.shape[0] != 1:
        raise ValueError(f"input_digest takes one canonical row, got {rows.shape[0]}")
    return hashlib.sha256(rows.tobytes()).digest()


# --- Configuration -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefenseConfig:
    """What one tier's answers reveal. Immutable and validated on construction (ValueError with the reason).

    - `top_k`: 1 answers the label (and its confidence); k > 1 also lists the k best labels with confidences.
      Must be 1..n_classes (the upper bound is checked by `from_dict(..., n_classes=)` and `apply_defenses`).
    - `confidence_decimals`: every returned number rounded to this many decimals (0..6); None = full precision.
    - `confidence_buckets`: strictly increasing edges in (0, 1), e.g. (0.5, 0.8, 0.95). When set, it replaces
      rounding: every returned number becomes the lower edge of its bucket, the largest edge <= value, or 0.0
      below the first edge (so 0.97 -> 0.95, 0.7 -> 0.5, 0.3 -> 0.0). A float, not a word, so clients parse one type.
    - `logit_noise_scale`: standard deviation of the keyed Gaussian noise added to the logits (>= 0; 0 = off).
    - `label_flip_fraction`: in [0, 1); the keyed fraction of inputs on which the noisy label is allowed to stand.
      On every other input the top-1 is put back to the model's own (see `apply_defenses`), so this is an upper
      bound on how often the noise changes a label. With no noise nothing can flip.
    - `watermark_fraction`: in [0, 1); the keyed fraction of input regions whose inputs are answered with the
      region's watermark class (`serving.watermark`).
    - `return_probabilities`: also return the whole (noisy, coarsened) probability vector.

    The defaults are a public tier's: top-1, two decimals, watermarking at 1.5%, no noise.
    """

    top_k: int = 1
    confidence_decimals: int | None = 2
    confidence_buckets: tuple[float, ...] | None = None
    logit_noise_scale: float = 0.0
    label_flip_fraction: float = 0.0
    watermark_fraction: float = DEFAULT_WATERMARK_FRACTION
    return_probabilities: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {self.top_k!r}")
        decimals = self.confidence_decimals
        if decimals is not None and (
            isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS
        ):
            raise ValueError(f"confidence_decimals must be None or an integer 0..{MAX_DECIMALS}, got {decimals!r}")
        if self.confidence_buckets is not None:
            buckets = self.confidence_buckets
            if isinstance(buckets, str | bytes) or not isinstance(buckets, Sequence) or len(buckets) == 0:
                raise ValueError("confidence_buckets must be None or a non-empty list of numbers")
            if not all(_is_number(edge) for edge in buckets):
                raise ValueError(f"confidence_buckets must hold numbers, got {list(buckets)!r}")
            edges = tuple(float(edge) for edge in buckets)
            if not all(0.0 < edge < 1.0 for edge in edges):
                raise ValueError(f"confidence_buckets edges must lie strictly between 0 and 1, got {list(edges)}")
            if any(b <= a for a, b in pairwise(edges)):
                raise ValueError(f"confidence_buckets must be strictly increasing, got {list(edges)}")
            object.__setattr__(self, "confidence_buckets", edges)  # normalise lists to a hashable tuple
        for name in ("logit_noise_scale", "label_flip_fraction", "watermark_fraction"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.logit_noise_scale < 0:
            raise ValueError(f"logit_noise_scale must be >= 0, got {self.logit_noise_scale}")
        for name in ("label_flip_fraction", "watermark_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not isinstance(self.return_probabilities, bool):
            raise ValueError(f"return_probabilities must be true or false, got {self.return_probabilities!r}")

    @classmethod
    def none(cls) -> DefenseConfig:
        """No defenses (enterprise): the model's own label, probabilities at full precision, no noise or watermark."""
        return cls(
            top_k=1,
            confidence_decimals=None,
            confidence_buckets=None,
            logit_noise_scale=0.0,
            label_flip_fraction=0.0,
            watermark_fraction=0.0,
            return_probabilities=True,
        )

    @property
    def perturbs(self) -> bool:
        """True when answers may differ from the model's own (noise, flips or watermarks)."""
        return self.logit_noise_scale > 0 or self.watermark_fraction > 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, n_classes: int | None = None) -> DefenseConfig:
        """Build a config from its JSON form (a tier's JSON field); missing keys take the defaults.

        Raises ValueError for unknown keys, wrong types or out-of-range values, and for top_k > n_classes when
        `n_classes` is given. `from_dict(config.to_dict()) == config`.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a defense config is a JSON object, got {type(data).__name__}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown defense setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if values.get("confidence_buckets") is not None:
            buckets = values["confidence_buckets"]
            if isinstance(buckets, str | bytes) or not isinstance(buckets, Sequence):
                raise ValueError("confidence_buckets must be None or a non-empty list of numbers")
            values["confidence_buckets"] = tuple(buckets)
        config = cls(**values)
        if n_classes is not None and config.top_k > n_classes:
            raise ValueError(f"top_k must be at most the number of classes ({n_classes}), got {config.top_k}")
        return config

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (buckets as a list)."""
        data = asdict(self)
        if self.confidence_buckets is not None:
            data["confidence_buckets"] = list(self.confidence_buckets)
        return data


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Applying the defenses ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DefendedPrediction:
    """One defended answer.

    - `label` / `confidence`: the returned class and its (noisy, coarsened) softmax probability. For a watermark
      answer the watermark class takes the top probability (see `apply_defenses`), so its confidence looks like
      any other answer's.
    - `top_k`: the k best (label, confidence) pairs, best first, when the config's top_k > 1; else None.
    - `probabilities`: the whole probability vector in class order when `return_probabilities`; else None.
    - `watermarked`: this answer carries the watermark label (the caller records which key received it).
    - `clean_label`: the model's own top-1 before any defense, for the query log. Never shown to the caller.
    """

    label: str
    confidence: float
    top_k: list[tuple[str, float]] | None
    probabilities: list[float] | None
    watermarked: bool
    clean_label: str


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's max so that large logits cannot overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _keyed_noise(rows: np.ndarray, n_classes: int, noise_secret: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal noise `(n, C)` and a flip draw `(n,)` in (0, 1), both functions of (secret, input) only.

    The 32-bit uniforms are the keyed hash (BLAKE2b) of the canonical row's bytes under `noise_secret`, read directly
    when they fit in its 64 bytes (up to 14 classes), else stretched from a 32-byte seed with SHAKE-256 (an
    extendable output function); Box-Muller turns them into normals. Per-row `Generator` objects would cost tens of
    microseconds each; this costs about one.
    """
    pairs = (n_classes + 1) // 2
    n_uniforms = 2 * pairs + 1
    size = 4 * n_uniforms
    if size <= _MAX_DIGEST:
        stream = keyed_row_digests(rows, secret=noise_secret, domain=NOISE_DOMAIN, digest_size=size)
    else:
        seeds = keyed_row_digests(rows, secret=noise_secret, domain=NOISE_DOMAIN)
        stream = b"".join(hashlib.shake_256(seeds[i : i + 32]).digest(size) for i in range(0, len(seeds), 32))
    words = np.frombuffer(stream, dtype=">u4").reshape(rows.shape[0], n_uniforms)
    uniforms = (words.astype(np.float64) + 0.5) / _TWO_32  # never exactly 0 or 1: log() stays finite
    radius = np.sqrt(-2.0 * np.log(uniforms[:, :pairs]))
    angle = 2.0 * np.pi * uniforms[:, pairs : 2 * pairs]
    normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :n_classes]
    return normals, uniforms[:, -1]


def _swap_columns(values: np.ndarray, row_mask: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """In place, on the masked rows: exchange the entries at columns `first[i]` and `second[i]`."""
    index = np.flatnonzero(row_mask)
    if index.size == 0:
        return
    a, b = first[index], second[index]
    held = values[index, a].copy()
    values[index, a] = values[index, b]
    values[index, b] = held


def _coarsen(values: np.ndarray, config: DefenseConfig) -> np.ndarray:
    if config.confidence_buckets is not None:
        edges = np.asarray(config.confidence_buckets, dtype=np.float64)
        position = np.searchsorted(edges, values, side="right") - 1
        return np.where(position >= 0, edges[np.maximum(position, 0)], 0.0)
    if config.confidence_decimals is not None:
        return np.round(values, config.confidence_decimals)
    return values


def apply_defenses(
    logits: np.ndarray,
    canonical_inputs: np.ndarray,
    *,
    config: DefenseConfig,
    class_labels: Sequence[str],
    noise_secret: bytes,
    watermark: RegionWatermark | None,
) -> list[DefendedPrediction]:
    """Defend a batch of answers: `logits` `(n, C)` from the served model, `canonical_inputs` `(n, d)` its canonical
    rows, `watermark` the model's regions under the server's secret (None only with no watermark fraction).

    The rules, in order, per row:

    1. clean = argmax(logits) (ties: the lowest index), reported as `clean_label`.
    2. Noise: logits + logit_noise_scale * N(0, 1)^C, keyed by (noise_secret, canonical input). No key, time or
       counter enters the seed, so every caller sees the same noisy answer for the same input.
    3. Label guard: unless the input's keyed flip draw is below `label_flip_fraction`, if the noisy argmax is not
       `clean`, the two logits are swapped, so the clean class is on top again. Swapping (rather than boosting)
       keeps the set of noisy values, so confidences keep their natural spread.
    4. Watermark: if the input lies in a marked region whose watermark class is not `clean` (`serving.watermark`,
       keyed by the watermark's secret), the clean class's and the watermark class's noisy logits are swapped (after
       forcing the clean class to the top, so the flip never applies), so the watermark class gets the top
       probability and the clean class the watermark class's. The confidence of a watermark answer is thus the
       model's confidence in its own label.
    5. Probabilities = softmax of the result; the label's confidence, the top-k confidences and the probability
       vector are coarsened (buckets, else rounding, else untouched).

    With `DefenseConfig.none()` nothing changes: the label is the argmax and the probabilities are the exact
    softmax of `logits`. A top_k above C answers all C classes (a tier's setting applies to models of any width).
    Raises ValueError on mismatched shapes and non-finite logits, and when a watermark is due but none is given.
    """
    scores = np.array(logits, dtype=np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"logits must have shape (n, classes), got {scores.shape}")
    n, n_classes = scores.shape
    if n_classes < 2:
        raise ValueError(f"a classifier has at least two classes, got {n_classes}")
    if len(class_labels) != n_classes:
        raise ValueError(f"{n_classes} logits per row but {len(class_labels)} class labels")
    rows = check_canonical_rows(canonical_inputs)
    if rows.shape[0] != n:
        raise ValueError(f"{n} rows of logits but {rows.shape[0]} inputs")
    if not np.isfinite(scores).all():
        raise ValueError("logits must be finite")
    labels = list(class_labels)
    row_index = np.arange(n)
    clean = scores.argmax(axis=1)
    # The served class is tracked, not re-derived with argmax, so that tied logits cannot undo a swap.
    served = clean.copy()

    if config.logit_noise_scale > 0 and n:
        normals, flip_draw = _keyed_noise(rows, n_classes, noise_secret)
        scores += config.logit_noise_scale * normals
        noisy_top = scores.argmax(axis=1)
        guard = flip_draw >= config.label_flip_fraction
        _swap_columns(scores, guard, clean, noisy_top)
        served = np.where(guard, clean, noisy_top)

    watermarked = np.zeros(n, dtype=bool)
    if config.watermark_fraction > 0 and n:
        if watermark is None:
            raise ValueError("this tier watermarks its answers: pass the model's RegionWatermark")
        watermarked, alternative = watermark.decide(rows, clean, n_classes, fraction=config.watermark_fraction)
        if watermarked.any():
            _swap_columns(scores, watermarked, clean, served)  # undo a flip: the clean class back on top
            _swap_columns(scores, watermarked, clean, alternative)
            served = np.where(watermarked, alternative, served)

    probabilities = softmax(scores)
    shown = _coarsen(probabilities, config)
    confidence = shown[row_index, served].tolist()
    top_k: list[list[tuple[str, float]] | None] = [None] * n
    top = min(config.top_k, n_classes)
    if top > 1:
        # Best first by the exact probabilities (stable: ties keep class order), the served class always first.
        key = -probabilities
        key[row_index, served] = -np.inf
        order = np.argsort(key, axis=1, kind="stable")[:, :top]
        best = np.take_along_axis(shown, order, axis=1).tolist()
        top_k = [[(labels[c], best[i][j]) for j, c in enumerate(order[i].tolist())] for i in range(n)]
    vectors: list[list[float] | None] = shown.tolist() if config.return_probabilities else [None] * n
    served_list, clean_list, marked = served.tolist(), clean.tolist(), watermarked.tolist()
    return [
        DefendedPrediction(
            label=labels[served_list[i]],
            confidence=confidence[i],
            top_k=top_k[i],
            probabilities=vectors[i],
            watermarked=marked[i],
            clean_label=labels[clean_list[i]],
        )
        for i in range(n)
    ]
