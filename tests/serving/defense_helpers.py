"""Inputs, logits, watermark regions and the defense call shared by the defense tests."""

import functools

import numpy as np

from serving.defenses import DefendedPrediction, DefenseConfig, apply_defenses
from serving.ml.digits import load_digits_split
from serving.watermark import RegionWatermark
from tests.serving.helpers import DIGITS

LABELS = [str(i) for i in range(10)]
NOISE_SECRET = b"noise-secret-for-tests"
WATERMARK_SECRET = b"watermark-secret-for-tests"


def digits_reference() -> np.ndarray:
    """The digits demo's reference data: its training rows, as canonical codes."""
    return load_digits_split().X_train.astype(np.uint8)


@functools.cache
def watermark_for(secret: bytes = WATERMARK_SECRET) -> RegionWatermark:
    """The digits model's regions under `secret`, fitted on its reference data (as the server fits them)."""
    return RegionWatermark.fit(DIGITS, digits_reference(), secret=secret, n_classes=10)


def random_inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, size=(n, 64), dtype=np.uint8)


def random_logits(n: int, seed: int = 0, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed + 1000).normal(size=(n, 10)) * scale


def defend(logits: np.ndarray, rows: np.ndarray, config: DefenseConfig, **secrets: bytes) -> list[DefendedPrediction]:
    return apply_defenses(
        logits,
        rows,
        config=config,
        class_labels=LABELS,
        noise_secret=secrets.get("noise_secret", NOISE_SECRET),
        watermark=watermark_for(secrets.get("watermark_secret", WATERMARK_SECRET)),
    )
