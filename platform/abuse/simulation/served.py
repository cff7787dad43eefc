"""Simulated calls and what the public API serves them: the tiers' pace and defenses, the served model (any schema),
its natural inputs."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from abuse.extraction import InputProfile
from serving.defenses import DefenseConfig, apply_defenses
from serving.input_schema import InputSchema
from serving.ml import breast_cancer
from serving.ml.digits import INPUT_SCHEMA, DigitsSplit, augment_digits, load_digits_split
from serving.ml.digits import SLUG as DIGITS_SLUG
from serving.ml.digits_models import CLASS_LABELS, DEFENDED, FULL, SPLIT_SEED, train_variant
from serving.ml.distill import distill, schema_variants
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
    inputs: np.ndarray  # (b, d) canonical codes of the model's schema
    labels: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    error: str | None = None  # "endpoint:error_code"


def no_inputs(n_features: int = 64) -> np.ndarray:
    return np.zeros((0, n_features), dtype=np.uint8)


def error_call(at: float, kind: str, n_features: int = 64) -> SimulatedCall:
    return SimulatedCall(at=at, inputs=no_inputs(n_features), error=kind)


# --- The served model -------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SimulatedModel:
    """A served model as the simulation needs it, for any schema: what its public tiers' variant answers, and its
    natural data.

    - `logits`: canonical codes (n, d) -> the logits (n, classes) of the variant the public tiers are served;
    - `reference`: the registered reference codes (the profile and the watermark are fitted on them);
    - `heldout`, `heldout_labels`: natural inputs the model never trained on, with their class indices (honest
      users send them; boundary probers start from them);
    - `public`: natural inputs an outside thief may own (its Knockoff-style pool);
    - `vary`: (rng, codes) -> natural variants of natural codes, as another sample of the same thing would differ
      (the digits demo's own augmentation, or `serving.ml.distill.schema_variants` for any schema)."""

    slug: str
    schema: InputSchema
    class_labels: tuple[str, ...]
    logits: Callable[[np.ndarray], np.ndarray]
    reference: np.ndarray
    heldout: np.ndarray
    heldout_labels: np.ndarray
    public: np.ndarray
    vary: Callable[[np.random.Generator, np.ndarray], np.ndarray]

    @classmethod
    def from_data(
        cls,
        *,
        slug: str,
        schema: InputSchema,
        class_labels: Sequence[str],
        logits: Callable[[np.ndarray], np.ndarray],
        reference: np.ndarray,
        heldout: np.ndarray,
        heldout_labels: np.ndarray,
        public: np.ndarray | None = None,
    ) -> SimulatedModel:
        """Any registered model. Its new natural inputs: for an image, `schema_variants` of a natural one (a shift,
        a lighter or heavier stroke, a little noise); for a table, a draw from a Gaussian kernel density of the
        natural rows (a natural row plus noise on every standardised feature, its bandwidth such that a draw lies
        about one natural nearest-neighbour distance from its row): another patient, not the same one measured
        twice, however many an honest customer sends. A model with no public rows lends its held-out ones to the
        thief."""
        reference = schema.check_codes(reference)
        heldout = schema.check_codes(heldout)
        public = schema.check_codes(heldout if public is None else public)
        return cls(
            slug=slug,
            schema=schema,
            class_labels=tuple(class_labels),
            logits=logits,
            reference=reference,
            heldout=heldout,
            heldout_labels=np.asarray(heldout_labels, dtype=np.int64),
            public=public,
            vary=natural_variation(schema, np.concatenate([reference, public, heldout]), spread_rows=reference),
        )

    @functools.cached_property
    def natural_pool(self) -> np.ndarray:
        """Every natural input the simulation knows of the model (reference, public and held-out)."""
        return np.concatenate([self.reference, self.public, self.heldout])

    @functools.cached_property
    def watermark(self) -> RegionWatermark:
        """The model's watermark regions under the simulation's secret, fitted on its reference data."""
        return RegionWatermark.fit(
            self.schema, self.reference, secret=SIMULATION_WATERMARK_SECRET, n_classes=len(self.class_labels)
        )

    @functools.cached_property
    def step_unit(self) -> np.ndarray:
        """A small change of each feature, in codes (`small_steps` of every natural input the simulation knows)."""
        return small_steps(self.natural_pool)

    def natural(self, rng: np.random.Generator, n: int, *, exact_share: float = 0.3) -> np.ndarray:
        """`n` natural inputs: a share `exact_share` held-out rows as they are, the rest natural variants of any
        natural row. Reference rows practically never appear as they are (a real user's inputs are new to the
        model)."""
        exact = rng.random(n) < exact_share
        out = np.empty((n, self.schema.n_features), dtype=self.schema.code_dtype)
        n_exact = int(exact.sum())
        out[exact] = self.heldout[rng.integers(0, self.heldout.shape[0], n_exact)]
        n_varied = n - n_exact
        if n_varied:
            pool = self.natural_pool
            out[~exact] = self.vary(rng, pool[rng.integers(0, pool.shape[0], n_varied)])
        return out


def small_steps(rows: np.ndarray) -> np.ndarray:
    """A small change of each feature of natural `rows` (codes), in codes: a sixteenth of its spread in them, at least
    one code (one intensity level of a digit's pixel). The step of a perturbation walk."""
    spread = np.asarray(rows, dtype=np.float64).std(axis=0)
    return np.maximum(1, np.ceil(spread / 16)).astype(np.int64)


def natural_variation(
    schema: InputSchema, rows: np.ndarray, *, spread_rows: np.ndarray | None = None
) -> Callable[[np.random.Generator, np.ndarray], np.ndarray]:
    """(rng, codes) -> a natural variant of each row, learnt from natural `rows` (codes) of the schema: for an
    image, `schema_variants` (a shift, a lighter or heavier stroke; `spread_rows`, default `rows`, set its per-pixel
    spread) and noise on its marked values (`IMAGE_VARIANT_NOISE`); for a table, a draw from a Gaussian kernel
    density of `rows` (a row plus noise on every standardised feature, its bandwidth such that a draw lies about one
    natural nearest-neighbour distance from its row)."""
    rows = np.asarray(rows)
    if schema.is_image:
        spread = np.asarray(rows if spread_rows is None else spread_rows, dtype=np.float64).std(axis=0)
        return functools.partial(_image_variants, schema=schema, spread=spread)
    pool = rows.astype(np.float64)
    scale = np.maximum(pool.std(axis=0), 1.0)
    bandwidth = _median_nearest_neighbour(pool / scale) / math.sqrt(schema.n_features)
    return functools.partial(_kernel_density_draws, schema=schema, noise=bandwidth * scale)


# Another drawing of an image differs in every marked value, not only in its overall intensity: noise of this
# share of the value range on the values above its low end (the digits demo's own augmentation: one level of 16 on
# the inked pixels). Without it a variant lies within a small step of its original, as a perturbation walk's do.
IMAGE_VARIANT_NOISE = 1 / 16


def _image_variants(rng: np.random.Generator, codes: np.ndarray, *, schema: InputSchema, spread: np.ndarray):
    varied = schema_variants(codes, schema, rng, spread).astype(np.float64)
    varied += rng.normal(0.0, IMAGE_VARIANT_NOISE * schema.top_code, varied.shape) * (varied > 0)
    return np.clip(np.rint(varied), 0, schema.top_code).astype(schema.code_dtype)


def _kernel_density_draws(rng: np.random.Generator, codes: np.ndarray, *, schema: InputSchema, noise: np.ndarray):
    drawn = codes.astype(np.float64) + rng.normal(0.0, 1.0, codes.shape) * noise
    return np.clip(np.rint(drawn), 0, schema.top_code).astype(schema.code_dtype)


def _median_nearest_neighbour(X: np.ndarray) -> float:
    """The median distance from a row to its nearest other row (rows of a natural sample, at most 2,000 of them)."""
    X = X[np.random.default_rng(0).permutation(X.shape[0])[:2_000]]
    d2 = (X * X).sum(axis=1)[:, None] + (X * X).sum(axis=1)[None, :] - 2 * X @ X.T
    np.fill_diagonal(d2, np.inf)
    d2[d2 <= 1e-12] = np.inf  # a row that appears twice is one natural input
    return float(np.median(np.sqrt(d2.min(axis=1))))


# --- The demo model and its data ----------------------------------------------------------------------------------


@functools.cache
def digits_split() -> DigitsSplit:
    """The demo models' split (cached): its held-out rows are natural digits the model never trained on."""
    return load_digits_split(seed=SPLIT_SEED)


@functools.cache
def digits_schema() -> InputSchema:
    return InputSchema.from_dict(INPUT_SCHEMA)


@functools.cache
def demo_model() -> MLPWeights:
    """The defended demo model the public tiers are served by, trained once per process: the very weights of
    `train_demo_models().defended` (same split, configurations and seeds; training is deterministic)."""
    split = digits_split()
    return train_variant(split, DEFENDED, teacher=train_variant(split, FULL))


def digits_model(weights: MLPWeights | None = None) -> SimulatedModel:
    """The digits demo as the simulation serves it: `weights` (default the defended demo model), its split, and
    its own augmentation (a one-pixel shift now and then, stroke weight, noise on the inked pixels)."""
    if weights is None or weights is demo_model():
        return _default_digits_model()
    return _digits_model(weights)


@functools.cache
def _default_digits_model() -> SimulatedModel:
    return _digits_model(demo_model())


def _digits_model(weights: MLPWeights) -> SimulatedModel:
    split = digits_split()
    return SimulatedModel(
        slug=DIGITS_SLUG,
        schema=digits_schema(),
        class_labels=tuple(CLASS_LABELS),
        logits=lambda codes: forward_logits(weights, codes.astype(np.float64)),
        reference=split.X_train.astype(np.uint8),
        heldout=split.X_test.astype(np.uint8),
        heldout_labels=split.y_test,
        public=split.X_public.astype(np.uint8),
        vary=lambda rng, codes: augment_digits(codes, rng),
    )


@functools.cache
def breast_cancer_model() -> SimulatedModel:
    """The tabular demo as the simulation serves it: its split, and the public tiers' variant distilled from its
    full model exactly as `register_breast_cancer` does (`serving.ml.distill`, default configuration), without the
    registry (the teacher is the scikit-learn pipeline itself, whose ONNX export answers the same)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = breast_cancer.load_split()
    schema = InputSchema.from_dict(breast_cancer.input_schema())
    teacher = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    teacher.fit(split.X_train, split.y_train)
    reference = schema.codes(split.X_train)

    def teacher_logits(values: np.ndarray) -> np.ndarray:
        return np.log(np.clip(teacher.predict_proba(values), 1e-12, 1.0))

    student = distill(teacher_logits, reference, schema, n_classes=len(split.class_labels)).weights
    return SimulatedModel.from_data(
        slug=breast_cancer.SLUG,
        schema=schema,
        class_labels=split.class_labels,
        logits=lambda codes: forward_logits(student, schema.values(codes)),
        reference=reference,
        heldout=schema.codes(split.X_test),
        heldout_labels=split.y_test,
        public=schema.codes(split.X_public),
    )


def as_simulated(model: SimulatedModel | MLPWeights | None) -> SimulatedModel:
    """The simulated model for a generator's `model` argument: a SimulatedModel as it is, digits weights (the demo's
    variants and copies) as the digits demo, None as the defended digits demo."""
    return model if isinstance(model, SimulatedModel) else digits_model(model)


def simulation_watermark() -> RegionWatermark:
    """The digits model's watermark regions under the simulation's secret (see `SimulatedModel.watermark`)."""
    return _default_digits_model().watermark


def answer(
    model: SimulatedModel | MLPWeights,
    tier_defenses: DefenseConfig,
    inputs: np.ndarray,
    *,
    class_labels: Sequence[str] | None = None,
    noise_secret: bytes = SIMULATION_NOISE_SECRET,
    watermark: RegionWatermark | None = None,
) -> tuple[list[str], list[float]]:
    """The served labels and confidences for canonical `inputs` (n, d), as the prediction view computes them: the
    model's logits, then the tier's output defenses (the watermark under the simulation's secret unless another is
    given)."""
    served = as_simulated(model)
    rows = served.schema.check_codes(np.ascontiguousarray(inputs, dtype=served.schema.code_dtype))
    if rows.shape[0] == 0:
        return [], []
    defended = apply_defenses(
        served.logits(rows),
        rows,
        config=tier_defenses,
        class_labels=list(class_labels) if class_labels is not None else list(served.class_labels),
        noise_secret=noise_secret,
        watermark=watermark if watermark is not None else served.watermark,
    )
    return [item.label for item in defended], [float(item.confidence) for item in defended]


def reference_profile(model: SimulatedModel | MLPWeights | None = None, *, tier: str = "free") -> InputProfile:
    """The model's reference profile: fitted on its reference rows, with the natural low-confidence share measured
    on its held-out rows as `tier` serves them. The free tier (the noisiest answers) is the default: a higher
    natural baseline means fewer honest users flagged for low confidences on any public tier."""
    served = as_simulated(model)
    _, confidences = answer(served, TIERS[tier].defenses, served.heldout)
    return InputProfile.for_schema(
        served.schema, served.reference, heldout=served.heldout, heldout_confidences=np.asarray(confidences)
    )


# --- Natural inputs ---------------------------------------------------------------------------------------------


def natural_digits(rng: np.random.Generator, n: int, *, exact_share: float = 0.3) -> np.ndarray:
    """`n` natural digits (n, 64) uint8 (`SimulatedModel.natural` of the digits demo): a share `exact_share` are
    held-out rows as they are, the rest augmented copies of any real digit; two augmented copies of one digit are
    several pixels' worth apart, like two writers' digits, not a small step from each other."""
    return _default_digits_model().natural(rng, n, exact_share=exact_share)
