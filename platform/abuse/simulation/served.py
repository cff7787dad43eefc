"""Simulated calls and what the public API serves them: the tiers' pace and defenses, the demo model, natural digits."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from abuse.extraction import InputProfile
from serving.defenses import DefenseConfig, apply_defenses
from serving.input_schema import InputSchema
from serving.ml.digits import DIGITS_FEATURES, INPUT_SCHEMA, DigitsSplit, augment_digits, load_digits_split
from serving.ml.digits_models import CLASS_LABELS, DEFENDED, FULL, SPLIT_SEED, train_variant
from serving.ml.mlp import MLPWeights, forward_logits
from serving.watermark import RegionWatermark

# The simulation's own keys: the watermark and noise choices are as random as production's, but not production's.
SIMULATION_NOISE_SECRET = b"moat-simulation-noise-v1"
SIMULATION_WATERMARK_SECRET = b"moat-simulation-watermark-v3"

DAY_SECONDS = 86_400.0
# The pipeline's reading of the query log (settings.ABUSE_RISK_WINDOW, ABUSE_RISK_MAX_INPUTS).
PIPELINE_WINDOW_SECONDS = DAY_SECONDS
PIPELINE_MAX_INPUTS = 5_000


@dataclass(frozen=True)
class TierPace:
    """What a tier lets one organization send, and how its answers are defended. Mirrors the seeded tiers
    (tiers migrations 0002 and 0003); the simulation does not read the database."""

    code: str
    per_minute: int
    per_hour: int
    per_day: int
    max_batch: int
    defenses: DefenseConfig
    # settings.ABUSE_NORMAL_VOLUME_FLOOR (5%) of the daily limit: what the pipeline passes as `normal_volume` for
    # a 24 h window when the tier's median organization sends less, i.e. the most sensitive value it ever uses.
    normal_volume: float


TIERS: dict[str, TierPace] = {
    "free": TierPace(
        code="free",
        per_minute=60,
        per_hour=1_000,
        per_day=10_000,
        max_batch=10,
        defenses=DefenseConfig(top_k=1, confidence_decimals=1, logit_noise_scale=1.0, watermark_fraction=0.015),
        normal_volume=500.0,
    ),
    "pro": TierPace(
        code="pro",
        per_minute=600,
        per_hour=20_000,
        per_day=200_000,
        max_batch=100,
        defenses=DefenseConfig(top_k=1, confidence_decimals=2, logit_noise_scale=0.5, watermark_fraction=0.015),
        normal_volume=10_000.0,
    ),
}

# Bad requests a prober makes while mapping the API (endpoint:error_code, as the query log records them).
RECON_ERRORS = (
    "unknown:not_found",
    "predict:method_not_allowed",
    "models:method_not_allowed",
    "usage:method_not_allowed",
    "predict:model_not_found",
    "predict:invalid_input",
    "predict:payload_too_large",
    "predict:unsupported_media_type",
)
# Honest mistakes, by weight: a malformed body now and then, the odd 429 of a client that does not pace itself.
HONEST_ERRORS = ("predict:invalid_input", "predict:rate_limited", "predict:payload_too_large")
HONEST_ERROR_WEIGHTS = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class SimulatedCall:
    """One API call: when, what was sent, what was served. A failed call has `error` and no inputs."""

    at: float  # seconds since the start of the simulation
    inputs: np.ndarray  # (b, 64) uint8, canonical (the digits schema's codes)
    labels: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    error: str | None = None  # "endpoint:error_code"


def no_inputs() -> np.ndarray:
    return np.zeros((0, DIGITS_FEATURES), dtype=np.uint8)


def error_call(at: float, kind: str) -> SimulatedCall:
    return SimulatedCall(at=at, inputs=no_inputs(), error=kind)


# --- The model and the data ---------------------------------------------------------------------------------------


@functools.cache
def digits_split() -> DigitsSplit:
    """The demo models' split (cached): its held-out rows are natural digits the model never trained on."""
    return load_digits_split(seed=SPLIT_SEED)


@functools.cache
def digits_schema() -> InputSchema:
    return InputSchema.from_dict(INPUT_SCHEMA)


@functools.cache
def simulation_watermark() -> RegionWatermark:
    """The digits model's watermark regions under the simulation's secret, fitted on its reference data (the
    training rows, as `train_demo_model` registers them)."""
    schema = digits_schema()
    return RegionWatermark.fit(
        schema, schema.codes(digits_split().X_train), secret=SIMULATION_WATERMARK_SECRET, n_classes=len(CLASS_LABELS)
    )


@functools.cache
def demo_model() -> MLPWeights:
    """The defended demo model the public tiers are served by, trained once per process: the very weights of
    `train_demo_models().defended` (same split, configurations and seeds; training is deterministic)."""
    split = digits_split()
    return train_variant(split, DEFENDED, teacher=train_variant(split, FULL))


def answer(
    model: MLPWeights,
    tier_defenses: DefenseConfig,
    inputs: np.ndarray,
    *,
    class_labels: Sequence[str] = CLASS_LABELS,
    noise_secret: bytes = SIMULATION_NOISE_SECRET,
    watermark: RegionWatermark | None = None,
) -> tuple[list[str], list[float]]:
    """The served labels and confidences for canonical `inputs` (n, 64) uint8, as the prediction view computes
    them: the model's logits, then the tier's output defenses (the watermark under the simulation's secret unless
    another is given)."""
    rows = np.ascontiguousarray(inputs, dtype=np.uint8)
    if rows.shape[0] == 0:
        return [], []
    logits = forward_logits(model, rows.astype(np.float64))
    defended = apply_defenses(
        logits,
        rows,
        config=tier_defenses,
        class_labels=class_labels,
        noise_secret=noise_secret,
        watermark=watermark if watermark is not None else simulation_watermark(),
    )
    return [item.label for item in defended], [float(item.confidence) for item in defended]


def reference_profile(model: MLPWeights | None = None, *, tier: str = "free") -> InputProfile:
    """The demo model's reference profile: fitted on its training rows, with the natural low-confidence share
    measured on its held-out rows as `tier` serves them. The free tier (the noisiest answers) is the default: a
    higher natural baseline means fewer honest users flagged for low confidences on any public tier."""
    model = model if model is not None else demo_model()
    split = digits_split()
    heldout = split.X_test.astype(np.uint8)
    _, confidences = answer(model, TIERS[tier].defenses, heldout)
    return InputProfile.fit(split.X_train, X_heldout=split.X_test, heldout_confidences=np.asarray(confidences))


# --- Natural inputs ---------------------------------------------------------------------------------------------


def natural_digits(rng: np.random.Generator, n: int, *, exact_share: float = 0.3) -> np.ndarray:
    """`n` natural digits (n, 64) uint8: a share `exact_share` are held-out rows as they are, the rest augmented
    copies of any real digit (training, public or held-out; `augment_digits`: a one-pixel shift now and then,
    stroke weight, noise on the inked pixels). Training rows practically never appear as they are (a real user's
    digits are new to the model), and two augmented copies of one digit are several pixels' worth apart, like two
    writers' digits, not a small step from each other."""
    split = digits_split()
    everything = np.concatenate([split.X_train, split.X_public, split.X_test])
    exact = rng.random(n) < exact_share
    out = np.empty((n, DIGITS_FEATURES), dtype=np.uint8)
    n_exact = int(exact.sum())
    out[exact] = split.X_test[rng.integers(0, split.X_test.shape[0], n_exact)].astype(np.uint8)
    n_aug = n - n_exact
    if n_aug:
        out[~exact] = augment_digits(everything[rng.integers(0, everything.shape[0], n_aug)], rng)
    return out
