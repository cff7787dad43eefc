"""Model-extraction risk of a window of API traffic, as pure functions (numpy and scipy; no Django, no database).

The abuse pipeline reads an organization's (or a sign-up ring's) recent query log into a `QueryWindow`, calls
`extraction_risk` with the served model's `InputProfile`, stores the `RiskResult` and throttles or freezes at
`THROTTLE_SCORE` / `FREEZE_SCORE`. The score is a sum of capped points, one `Component` per signal, each with the
measured value and a sentence a reviewer (and the customer) can read. The signals and what each detects:

- **volume** — far more inputs than an honest organization of the tier sends in the window. Extraction needs
  many answers (Tramèr et al., "Stealing Machine Learning Models via Prediction APIs", USENIX Security 2016), but
  so does a big honest customer, so volume is weighted to stay well below the freeze level on its own.
- **unique_inputs** — every input distinct: query synthesis never repeats itself, while real applications re-send
  some inputs. Weak on its own (natural data is mostly unique too).
- **unnatural_inputs** — inputs far from the training distribution (Mahalanobis distance beyond what 99% of
  natural digits reach). Synthetic query sets — random images, interpolations, adversarial-style steps — are
  off-manifold (Papernot et al., "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017; Tramèr
  et al. 2016; Pal et al., "ActiveThief", AAAI 2020 discuss why natural data is needed to avoid exactly this).
- **input_entropy** — the entropy of an input's pixel-value histogram: handwritten digits are mostly background
  and full strokes (about 2-3 bits), uniform noise uses all 17 levels (about log2(17) = 4.1 bits).
- **low_confidence** — many answers with low confidence, far more than natural inputs get: queries placed on the
  decision boundary (line search, Tramèr et al. 2016; boundary-seeking synthesis, Papernot et al. 2017).
- **class_coverage** — the traffic exercises every class evenly: systematic exploration (a retrainer wants a
  balanced training set). Natural traffic looks the same, so it is weighted low.
- **prada** — PRADA (Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks", EuroS&P 2019): the
  minimum distances between each new query and earlier queries of the same predicted class follow a roughly
  normal distribution for natural queries and a clearly non-normal one for query sets that mix natural seeds
  with synthetic samples around them; a Shapiro-Wilk W below `PRADA_DELTA` flags an attack. On the digits it
  separates less than in the paper (see PRADA_DELTA): it is one signal among several, not the detector.
- **perturbation_walk** — many queries a small non-zero step from an earlier query, chained into long walks or
  families descending from one input: the Jacobian-based augmentation of Papernot et al. 2017 and the step-wise
  probing of Juuti et al. 2019 (their "T-RND" and "I-FGSM" query sets), and line searches (Tramèr et al. 2016).
- **reconnaissance** — a burst of failed calls of several distinct kinds (endpoints x error codes) before the
  traffic starts: someone mapping the API, not an application that was wired up once.
- **linked_accounts** — for a sign-up ring scored as one window: linked accounts whose merged traffic exceeds what
  one organization sends. A ring that retrains on natural data looks honest input by input (Orekondy et al.,
  "Knockoff Nets", CVPR 2019); what gives it away is that it is one actor spread over several accounts.

Every threshold and weight is a module constant below with the reason for its value. `abuse.simulation` and
tests/abuse/test_calibration.py measure them against simulated honest users and attackers served by the real
demo model.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

PROFILE_FORMAT = 1
PROFILE_NN_ROWS = 5_000  # rows used for the natural nearest-neighbour quantile (O(n^2) distances)

# --- Decision levels (the pipeline reads them from settings, with these defaults) --------------------------------
# Throttle at 50: two strong signals, or one strong signal with corroboration. Freeze at 80: several independent
# signals agree; no single component's cap reaches it (see the caps below), so one ambiguous measure never freezes.
THROTTLE_SCORE = 50
FREEZE_SCORE = 80

# --- Scoring limits ------------------------------------------------------------------------------------------------
# The most recent inputs scored (the pipeline reads at most 5,000); bounds the O(n^2) distance work (0.1-0.2 s).
MAX_SCORED_INPUTS = 5_000
# One-sided z for the Wilson lower bound of a share: with few inputs, a share must be convincingly above the
# natural baseline (95%) before it counts, so a handful of odd inputs never scores.
SHARE_CONFIDENCE_Z = 1.645
# Below this many inputs the share-based signals count proportionally less, however clear the share: a developer
# trying the API with a few dozen random arrays is not an attack; an attacker gets there within two minutes.
SHARE_MIN_INPUTS = 100

# volume: points grow with log(inputs / normal_volume) from VOLUME_ONSET x normal to VOLUME_FULL x normal. The onset
# is "well above normal" (normal is a median: half of honest organizations send more); the cap of 25 keeps even an
# enormous honest customer, whose other signals are all natural, under the throttle level (25 + 8 + 5 < 50).
VOLUME_MAX_POINTS = 25.0
VOLUME_ONSET = 1.5
VOLUME_FULL = 10.0

# unique_inputs: full points when every input is distinct, none at 90% distinct; needs UNIQUE_MIN_INPUTS inputs to
# count fully (twenty natural inputs are trivially all distinct). Low weight: natural traffic is mostly unique.
UNIQUE_MAX_POINTS = 8.0
UNIQUE_ONSET = 0.90
UNIQUE_MIN_INPUTS = 500

# unnatural_inputs: the Wilson lower bound of the share of inputs beyond the natural q99 distance. Onset at 8%:
# new natural digits exceed about 1%, and the demo digits are centred, so an honest client that sometimes frames a
# digit one pixel off (40-85% of those exceed) stays around 5%. Full at 30% (uniform noise: 100%; a perturbation
# walk drifts past it within a few hundred steps). 40 points: with every ambiguous signal at its cap
# (25 + 8 + 5) it stays below the freeze level, so a customer whose digits are all preprocessed differently is at
# worst throttled and reviewed, never frozen by this alone.
UNNATURAL_MAX_POINTS = 40.0
UNNATURAL_ONSET = 0.08
UNNATURAL_FULL = 0.30

# input_entropy: the Wilson lower bound of the share of inputs whose pixel-histogram entropy is outside the natural
# [q01, q99] range (2% of natural digits by construction); onset 8%, full 50%.
ENTROPY_MAX_POINTS = 25.0
ENTROPY_ONSET = 0.08
ENTROPY_FULL = 0.50

# low_confidence: an answer is low-confidence below 0.6 (the free tier rounds to one decimal, so "0.5 or less").
# The share counts from twice the natural share (or natural + 5 points, whichever is higher) to 30%: the defended
# model answers only ~3% of natural digits below 0.6, and even a bisection onto its boundary gets 15-30% (the
# coarsened inputs and the label guard keep most answers confident).
LOW_CONFIDENCE = 0.6
LOW_CONFIDENCE_MAX_POINTS = 30.0
LOW_CONFIDENCE_FULL = 0.30
# The natural share assumed when the profile has none measured: the demo's defended model answers ~3% of natural
# digits below 0.6 under the free tier's noise; 10% errs towards not flagging a model we know nothing about.
LOW_CONFIDENCE_DEFAULT_BASELINE = 0.10

# class_coverage: normalized entropy of the served labels, counted only after COVERAGE_MIN_PER_CLASS inputs per class.
COVERAGE_MAX_POINTS = 5.0
COVERAGE_MIN_PER_CLASS = 20

# prada: Juuti et al. compute W once |D| > 100 on all distances; we test the latest PRADA_MAX_DISTANCES (scipy's
# Shapiro-Wilk is exact to n = 5,000). The paper picks delta per data set so that benign traffic never alarms; on
# natural digits (30 simulated honest users, 150-2,000 queries each) W stays at or above 0.935, so delta = 0.92.
# Measured on the simulated attacks: uniform noise 0.99, boundary bisection 0.93-0.95, a walk from one image
# 0.97-0.98 (all its distances are small steps: unimodal). PRADA flags what mixes natural queries with synthetic
# ones around them (the paper's JbDA and T-RND); the attacks above are caught by the other signals.
PRADA_MIN_DISTANCES = 100
PRADA_MAX_DISTANCES = 5_000
PRADA_DELTA = 0.92
PRADA_FULL = 0.80  # W at or below this: full points
PRADA_MAX_POINTS = 40.0

# perturbation_walk: a query is a "step" when its nearest earlier distinct query is within the radius: half the 1%
# quantile of natural nearest-neighbour distances (different writers' digits are never this close), at most
# PERTURBATION_RADIUS_MAX intensity units (4 pixels moved by 2.5 levels). Two parts:
# - steps (45 points): the Wilson lower bound of the share of steps, from 10% (an honest app re-sending a slightly
#   re-scanned digit is rare: 1-4% measured) to 50%. Boundary bisection also scores here (each midpoint is close
#   to the previous one).
# - walk (30 points): the steps chain into a walk, either the longest chain (10 -> 40 steps in a row) or the
#   largest family of inputs descending from one input (20% -> 50% of the window, counted fully from 50 inputs):
#   perturbations *of one input*, not of many natural seeds.
# 75 together, below the freeze level alone; a walk that is also all-distinct (unique_inputs) or drifts off the
# natural digits is frozen. An honest client streaming near-identical camera frames of one digit for hours would
# look like a walk: the explanation says so to the reviewer.
PERTURBATION_RADIUS_MAX = 5.0
PERTURBATION_DEFAULT_RADIUS = 5.0  # with no profile: what the demo digits' profile gives (half of q01 = 10)
PERTURBATION_SHARE_ONSET = 0.10
PERTURBATION_SHARE_FULL = 0.50
PERTURBATION_CHAIN_ONSET = 10
PERTURBATION_CHAIN_FULL = 40
PERTURBATION_FAMILY_ONSET = 0.20
PERTURBATION_FAMILY_FULL = 0.50
PERTURBATION_FAMILY_MIN = 50
PERTURBATION_STEPS_POINTS = 45.0
PERTURBATION_WALK_POINTS = 30.0
PERTURBATION_MAX_POINTS = PERTURBATION_STEPS_POINTS + PERTURBATION_WALK_POINTS

# reconnaissance: errors before 10% of the window's inputs were sent, more than 3 distinct kinds of them within
# RECON_BURST_SECONDS (an honest developer wiring up a client makes one or two kinds of mistake, plus the odd
# oversized batch), full at 6. 429s are the quota's doing, not probing, and are not a kind. Early errors must be at
# least half of all errors: a burst at the start, not a steady error rate.
RECON_EARLY_SHARE = 0.10
RECON_BURST_SECONDS = 1_800.0
RECON_MIN_KINDS = 4
RECON_FULL_KINDS = 6
RECON_IGNORED_CODES = frozenset({"rate_limited", "service_unavailable", "spend_cap_reached"})
RECON_MAX_POINTS = 20.0

# linked_accounts: a ring's merged inputs against ONE organization's normal volume (the ring is one actor), from 1x
# (log scale) to full at 2.5x. 60 points: a ring that sends several times an organization's normal is quota evasion
# at scale; with volume it freezes, on its own it stays below the freeze level.
LINKED_MAX_POINTS = 60.0
LINKED_FULL = 2.5


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


def _pairwise_sq(a: np.ndarray, b: np.ndarray, a_norms: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    # float32 is exact here: inputs are integers <= 16, so every product and sum stays below 2**24.
    d2 = a_norms[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


def _nearest_other_distances(X: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row (leave-one-out), blocked to bound memory."""
    X = np.asarray(X, dtype=np.float32)
    norms = (X * X).sum(axis=1)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], 1024):
        d2 = _pairwise_sq(X[start : start + 1024], X, norms[start : start + 1024], norms)
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


# --- Windows and results -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QueryWindow:
    """A window of one organization's (or one ring's merged) query log, in time order.

    `total_inputs` is how many inputs the whole window period holds when `inputs` carries only the latest of them
    (the pipeline reads at most 5,000); None means `len(inputs)`. Volume is judged on it, everything else on the
    inputs carried."""

    inputs: np.ndarray  # (n, 64) uint8
    labels: np.ndarray  # (n,) str, served labels
    confidences: np.ndarray  # (n,) float, served confidences
    times: np.ndarray  # (n,) float epoch seconds of each input's call
    error_times: np.ndarray  # (m,) float
    error_kinds: list[str]  # (m,) "endpoint:error_code"
    n_classes: int
    accounts: int = 1
    total_inputs: int | None = None

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if not (len(self.labels) == len(self.confidences) == len(self.times) == n):
            raise ValueError("inputs, labels, confidences and times must have one entry per input")
        if len(self.error_times) != len(self.error_kinds):
            raise ValueError("error_times and error_kinds must have one entry per error")
        if self.n_classes < 2 or self.accounts < 1:
            raise ValueError("n_classes must be >= 2 and accounts >= 1")

    @property
    def volume(self) -> int:
        return len(self.inputs) if self.total_inputs is None else max(self.total_inputs, len(self.inputs))


@dataclass(frozen=True)
class Component:
    """One signal's part of the score: `value` is what was measured (a share, a ratio, a W statistic, a count),
    `points` (0..max_points) its contribution, `detail` the measurement in plain words."""

    name: str  # stable slug, e.g. "unnatural_inputs"
    value: float
    points: float
    max_points: float
    detail: str

    def __post_init__(self) -> None:
        # Plain floats: the pipeline stores components in a JSONField.
        for name in ("value", "points", "max_points"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class RiskResult:
    score: int  # 0..100
    components: tuple[Component, ...]
    explanation: str
    queries: int

    def component(self, name: str) -> Component:
        return next(component for component in self.components if component.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for storing with the assessment."""
        return {
            "score": self.score,
            "queries": self.queries,
            "explanation": self.explanation,
            "components": [
                {
                    "name": c.name,
                    "value": round(c.value, 6),
                    "points": round(c.points, 3),
                    "max_points": c.max_points,
                    "detail": c.detail,
                }
                for c in self.components
            ],
        }


# --- Statistics helpers ------------------------------------------------------------------------------------------


def wilson_lower_bound(successes: int, n: int, *, z: float = SHARE_CONFIDENCE_Z) -> float:
    """The lower end of the Wilson score interval for a share (0 when n == 0): a share observed on few inputs
    counts for less than the same share on many."""
    if n <= 0:
        return 0.0
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denominator)


def _ramp(value: float, onset: float, full: float) -> float:
    """0 at or below onset, 1 at or above full, linear in between."""
    if full <= onset:
        return 1.0 if value >= full else 0.0
    return float(min(1.0, max(0.0, (value - onset) / (full - onset))))


def _share_strength(count: int, n: int, onset: float, full: float) -> float:
    """How strongly `count` of `n` inputs show a trait: the Wilson lower bound of the share on a ramp, scaled down
    below SHARE_MIN_INPUTS inputs."""
    return _ramp(wilson_lower_bound(count, n), onset, full) * min(1.0, n / SHARE_MIN_INPUTS)


def _log_ramp(ratio: float, onset: float, full: float) -> float:
    if ratio <= onset:
        return 0.0
    return float(min(1.0, math.log(ratio / onset) / math.log(full / onset)))


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


# --- Distance signals --------------------------------------------------------------------------------------------


def nearest_earlier_distances(inputs: np.ndarray, *, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For each input, the L2 distance to its nearest *earlier distinct* input and that input's index (inf and -1
    for the first, or when every earlier input is identical to it). Exact repeats are skipped: a repeat carries
    nothing new; a step is a small *non-zero* change. Blocked matrix products: ~0.1 s for 5,000 inputs."""
    X = np.asarray(inputs, dtype=np.float32)
    n = X.shape[0]
    norms = (X * X).sum(axis=1)
    distance = np.full(n, np.inf)
    nearest = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, block):
        stop = min(n, start + block)
        d2 = _pairwise_sq(X[start:stop], X[:stop], norms[start:stop], norms[:stop])
        # Only earlier inputs (column < row), and only distinct ones.
        later = np.arange(stop)[None, :] >= np.arange(start, stop)[:, None]
        d2[later | (d2 == 0)] = np.inf
        best = d2.argmin(axis=1)
        best_d2 = d2[np.arange(stop - start), best]
        found = np.isfinite(best_d2)
        distance[start:stop] = np.where(found, np.sqrt(best_d2), np.inf)
        nearest[start:stop] = np.where(found, best, -1)
    return distance, nearest


@dataclass(frozen=True, eq=False)
class PerturbationSteps:
    """How much of a window is small steps from earlier inputs.

    - `steps`: (n,) which inputs are a small step (0 < distance <= radius) from their nearest earlier input;
    - `longest_chain`: the most steps in a row (a step from a step from a step ...);
    - `largest_family`: the most inputs descending from one input by steps, that input included."""

    steps: np.ndarray
    longest_chain: int
    largest_family: int


def perturbation_steps(inputs: np.ndarray, radius: float) -> PerturbationSteps:
    """Link each input to its nearest earlier distinct input when it is within `radius`, and measure the walks."""
    distance, nearest = nearest_earlier_distances(inputs)
    step = distance <= radius
    n = len(step)
    depth = np.zeros(n, dtype=np.int64)
    root = np.arange(n)
    for i in np.flatnonzero(step).tolist():  # parents come before children: one pass in time order
        parent = int(nearest[i])
        depth[i] = depth[parent] + 1
        root[i] = root[parent]
    families = np.bincount(root, minlength=n) if n else np.zeros(0, dtype=np.int64)
    return PerturbationSteps(
        steps=step, longest_chain=int(depth.max(initial=0)), largest_family=int(families.max(initial=0))
    )


def prada_distances(inputs: np.ndarray, labels: np.ndarray, *, block: int = 512) -> np.ndarray:
    """The PRADA distance set D (Juuti et al. 2019, Algorithm 1), in time order.

    Per predicted class c, a growing set G_c of earlier queries and a threshold T_c. Each new query of class c
    contributes its minimum L2 distance d to G_c to D; it joins G_c when d > T_c, and T_c becomes
    max(T_c, mean - std) of the distances of G_c's members. The first query of a class only starts G_c.

    One deviation from the paper: an exact repeat of a member of G_c (d = 0) adds nothing to D. Honest
    applications re-send inputs (retries, the same image checked twice); in the paper's version each repeat adds a
    zero, and a few percent of zeros pull natural traffic's W down to the attacks' range (measured on simulated
    honest users: 0.88-0.93 at a few hundred queries). Repeats are the unique_inputs signal's business.

    Vectorised per class: instead of measuring each query against G_c, each new member of G_c updates the running
    minimum of every later query of its class (a row of a blocked distance matrix)."""
    X = np.asarray(inputs, dtype=np.float32)
    labels = np.asarray(labels)
    positions: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for label in np.unique(labels):
        index = np.flatnonzero(labels == label)
        Xc = X[index]
        norms = (Xc * Xc).sum(axis=1)
        m = index.size
        running_min = np.full(m, np.inf, dtype=np.float64)
        recorded = np.full(m, np.nan)
        threshold, total, total_sq, members = 0.0, 0.0, 0.0, 0
        for start in range(0, m, block):
            stop = min(m, start + block)
            rows = np.sqrt(_pairwise_sq(Xc[start:stop], Xc[start:], norms[start:stop], norms[start:]))
            for k in range(start, stop):
                if k == 0:
                    join = True
                else:
                    d = running_min[k]
                    if d == 0.0:
                        continue  # an exact repeat of a member of G_c: not a new sample (see the docstring)
                    recorded[k] = d
                    join = d > threshold
                    if join:
                        total, total_sq, members = total + d, total_sq + d * d, members + 1
                        mean = total / members
                        std = math.sqrt(max(total_sq / members - mean * mean, 0.0))
                        threshold = max(threshold, mean - std)
                if join and k + 1 < m:
                    tail = running_min[k + 1 :]
                    np.minimum(tail, rows[k - start, k + 1 - start :], out=tail)
        keep = ~np.isnan(recorded)
        positions.append(index[keep])
        values.append(recorded[keep])
    if not positions:
        return np.zeros(0)
    order = np.argsort(np.concatenate(positions), kind="stable")
    return np.concatenate(values)[order]


def prada_statistic(distances: np.ndarray) -> float | None:
    """Shapiro-Wilk W of the latest PRADA_MAX_DISTANCES distances after removing points beyond 3 standard
    deviations (as in the paper), or None with fewer than PRADA_MIN_DISTANCES. A set with no spread at all (every
    distance equal) is as far from normal as it gets: W = 0."""
    D = np.asarray(distances, dtype=np.float64)[-PRADA_MAX_DISTANCES:]
    if D.size < PRADA_MIN_DISTANCES:
        return None
    mean, std = D.mean(), D.std()
    D = D[np.abs(D - mean) <= 3 * std] if std > 0 else D
    if D.size < 3 or np.ptp(D) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about ties; W is still the statistic we want
        return float(stats.shapiro(D).statistic)


# --- The components ----------------------------------------------------------------------------------------------


def _volume(window: QueryWindow, normal_volume: float) -> Component:
    ratio = window.volume / normal_volume
    points = VOLUME_MAX_POINTS * _log_ramp(ratio, VOLUME_ONSET, VOLUME_FULL)
    return Component(
        "volume",
        ratio,
        points,
        VOLUME_MAX_POINTS,
        f"{window.volume:,} inputs, {ratio:.1f}x what an organization of this tier normally sends"
        f" ({normal_volume:,.0f})",
    )


def _unique(inputs: np.ndarray) -> Component:
    n = inputs.shape[0]
    unique = np.unique(inputs, axis=0).shape[0] if n else 0
    ratio = unique / n if n else 0.0
    points = UNIQUE_MAX_POINTS * _ramp(ratio, UNIQUE_ONSET, 1.0) * min(1.0, n / UNIQUE_MIN_INPUTS)
    return Component(
        "unique_inputs", ratio, points, UNIQUE_MAX_POINTS, f"{_percent(ratio)} of {n:,} inputs are distinct"
    )


def _not_measured(name: str, max_points: float, why: str) -> Component:
    return Component(name, 0.0, 0.0, max_points, f"not measured: {why}")


def _unnatural(inputs: np.ndarray, profile: InputProfile | None) -> Component:
    if profile is None:
        return _not_measured("unnatural_inputs", UNNATURAL_MAX_POINTS, "the model has no reference profile")
    n = inputs.shape[0]
    far = int(np.sum(profile.distances(inputs) > profile.distance_q99)) if n else 0
    share = far / n if n else 0.0
    onset = max(UNNATURAL_ONSET, 3 * profile.unnatural_baseline)
    points = UNNATURAL_MAX_POINTS * _share_strength(far, n, onset, UNNATURAL_FULL)
    return Component(
        "unnatural_inputs",
        share,
        points,
        UNNATURAL_MAX_POINTS,
        f"{_percent(share)} of inputs are far from natural digits (natural: {_percent(profile.unnatural_baseline)})",
    )


def _entropy(inputs: np.ndarray, profile: InputProfile | None) -> Component:
    if profile is None:
        return _not_measured("input_entropy", ENTROPY_MAX_POINTS, "the model has no reference profile")
    n = inputs.shape[0]
    entropy = pixel_entropy(inputs)
    outside = int(np.sum((entropy < profile.entropy_q01) | (entropy > profile.entropy_q99)))
    share = outside / n if n else 0.0
    points = ENTROPY_MAX_POINTS * _share_strength(outside, n, ENTROPY_ONSET, ENTROPY_FULL)
    mean = float(entropy.mean()) if n else 0.0
    return Component(
        "input_entropy",
        share,
        points,
        ENTROPY_MAX_POINTS,
        f"{_percent(share)} of inputs have a pixel-value spread unlike digits (mean {mean:.1f} bits; digits "
        f"{profile.entropy_q01:.1f}-{profile.entropy_q99:.1f}, random noise ~4.1)",
    )


def _low_confidence(confidences: np.ndarray, profile: InputProfile | None) -> Component:
    n = confidences.shape[0]
    measured = profile is not None and profile.low_confidence_share is not None
    baseline = profile.low_confidence_share if measured else LOW_CONFIDENCE_DEFAULT_BASELINE
    low = int(np.sum(confidences < LOW_CONFIDENCE))
    share = low / n if n else 0.0
    onset = max(2 * baseline, baseline + 0.05)
    points = LOW_CONFIDENCE_MAX_POINTS * _share_strength(low, n, onset, LOW_CONFIDENCE_FULL)
    natural = f"natural: {_percent(baseline)}" + ("" if measured else ", assumed")
    return Component(
        "low_confidence",
        share,
        points,
        LOW_CONFIDENCE_MAX_POINTS,
        f"{_percent(share)} of answers have confidence below {LOW_CONFIDENCE:g} ({natural})",
    )


def _coverage(labels: np.ndarray, n_classes: int) -> Component:
    n = labels.shape[0]
    if n == 0:
        return Component("class_coverage", 0.0, 0.0, COVERAGE_MAX_POINTS, "no inputs")
    _, counts = np.unique(labels, return_counts=True)
    p = counts / n
    evenness = float(-(p * np.log(p)).sum() / math.log(n_classes))
    points = COVERAGE_MAX_POINTS * evenness * min(1.0, n / (COVERAGE_MIN_PER_CLASS * n_classes))
    return Component(
        "class_coverage",
        evenness,
        points,
        COVERAGE_MAX_POINTS,
        f"answers span {counts.size} of {n_classes} classes, evenness {evenness:.2f}",
    )


def _prada(inputs: np.ndarray, labels: np.ndarray) -> Component:
    distances = prada_distances(inputs, labels)
    w = prada_statistic(distances)
    if w is None:
        return Component(
            "prada",
            1.0,
            0.0,
            PRADA_MAX_POINTS,
            f"not yet tested: {distances.size} of the {PRADA_MIN_DISTANCES} query distances it needs",
        )
    points = PRADA_MAX_POINTS * _ramp(PRADA_DELTA - w, 0.0, PRADA_DELTA - PRADA_FULL) if w < PRADA_DELTA else 0.0
    verdict = "not the near-normal spread of natural queries" if w < PRADA_DELTA else "a natural spread"
    return Component(
        "prada",
        w,
        points,
        PRADA_MAX_POINTS,
        f"distances between queries of the same class: Shapiro-Wilk W {w:.3f} over"
        f" {min(distances.size, PRADA_MAX_DISTANCES):,}, {verdict} (alarm below {PRADA_DELTA})",
    )


def _perturbation(inputs: np.ndarray, profile: InputProfile | None) -> Component:
    n = inputs.shape[0]
    radius = profile.perturbation_radius if profile is not None else PERTURBATION_DEFAULT_RADIUS
    measured = perturbation_steps(inputs, radius)
    count = int(measured.steps.sum())
    share = count / n if n else 0.0
    family_share = measured.largest_family / n if n else 0.0
    steps_strength = _share_strength(count, n, PERTURBATION_SHARE_ONSET, PERTURBATION_SHARE_FULL)
    walk_strength = max(
        _ramp(measured.longest_chain, PERTURBATION_CHAIN_ONSET, PERTURBATION_CHAIN_FULL),
        _ramp(family_share, PERTURBATION_FAMILY_ONSET, PERTURBATION_FAMILY_FULL)
        * min(1.0, measured.largest_family / PERTURBATION_FAMILY_MIN),
    )
    points = PERTURBATION_STEPS_POINTS * steps_strength + PERTURBATION_WALK_POINTS * walk_strength
    return Component(
        "perturbation_walk",
        share,
        points,
        PERTURBATION_MAX_POINTS,
        f"{_percent(share)} of inputs are a small change (within {radius:.1f}) of an earlier input; the longest"
        f" chain of such steps is {measured.longest_chain}, the largest family descending from one input"
        f" {measured.largest_family:,} inputs ({_percent(family_share)})",
    )


def _burst_kinds(times: list[float], kinds: list[str], span: float) -> set[str]:
    """The largest set of distinct kinds among errors that fall within `span` seconds of each other (two pointers
    over the errors in time order)."""
    order = sorted(range(len(times)), key=times.__getitem__)
    counts: dict[str, int] = {}
    best: set[str] = set()
    left = 0
    for right in order:
        counts[kinds[right]] = counts.get(kinds[right], 0) + 1
        while times[right] - times[order[left]] > span:
            gone = kinds[order[left]]
            counts[gone] -= 1
            if not counts[gone]:
                del counts[gone]
            left += 1
        if len(counts) > len(best):
            best = set(counts)
    return best


def _reconnaissance(window: QueryWindow) -> Component:
    m = len(window.error_kinds)
    if m == 0:
        return Component("reconnaissance", 0.0, 0.0, RECON_MAX_POINTS, "no failed calls")
    n = len(window.times)
    # "Before the volume starts": before RECON_EARLY_SHARE of the window's inputs (all errors if there are none).
    cutoff = float(window.times[int(RECON_EARLY_SHARE * (n - 1))]) if n else math.inf
    error_times = np.asarray(window.error_times, dtype=np.float64).tolist()
    early = [(at, kind) for at, kind in zip(error_times, window.error_kinds, strict=True) if at <= cutoff]
    probing = [(at, kind) for at, kind in early if kind.rpartition(":")[2] not in RECON_IGNORED_CODES]
    kinds = _burst_kinds([at for at, _ in probing], [kind for _, kind in probing], RECON_BURST_SECONDS)
    concentrated = len(early) >= m / 2
    strength = _ramp(len(kinds), RECON_MIN_KINDS - 1, RECON_FULL_KINDS) if concentrated else 0.0
    return Component(
        "reconnaissance",
        float(len(kinds)),
        RECON_MAX_POINTS * strength,
        RECON_MAX_POINTS,
        f"{len(early)} of {m} failed calls came before the traffic started, {len(kinds)} distinct kinds in one burst"
        + (f" ({', '.join(sorted(kinds))})" if kinds else ""),
    )


def _linked(window: QueryWindow, normal_volume: float) -> Component:
    if window.accounts < 2:
        return Component("linked_accounts", 1.0, 0.0, LINKED_MAX_POINTS, "a single organization")
    ratio = window.volume / normal_volume
    points = LINKED_MAX_POINTS * _log_ramp(ratio, 1.0, LINKED_FULL)
    return Component(
        "linked_accounts",
        float(window.accounts),
        points,
        LINKED_MAX_POINTS,
        f"{window.accounts} linked accounts together sent {window.volume:,} inputs, {ratio:.1f}x what one "
        "organization normally sends",
    )


# --- The score ---------------------------------------------------------------------------------------------------


def extraction_risk(
    window: QueryWindow,
    profile: InputProfile | None,
    *,
    normal_volume: float,
    throttle_score: int = THROTTLE_SCORE,
    freeze_score: int = FREEZE_SCORE,
) -> RiskResult:
    """Score a window's extraction risk 0..100: the rounded sum of the components' capped points (see the module
    doc), with an explanation that lists the reasons, strongest first.

    `normal_volume` is what one honest organization of the tier sends in a window of this length (positive; the
    pipeline floors it). For a ring (`window.accounts > 1`) pass the same one-organization figure: the ring is one
    actor, and its merged volume is held against it. `profile=None` (a model without a reference profile) scores
    with the components that need none, and the explanation says which were skipped. Only the latest
    MAX_SCORED_INPUTS inputs are scored; volume counts `window.total_inputs`. Pure and deterministic; 0.1-0.2 s
    for 5,000 inputs. The thresholds only name the level in the explanation (the pipeline passes its settings).
    Raises ValueError for a non-positive `normal_volume`."""
    if not normal_volume > 0:
        raise ValueError(f"normal_volume must be positive, got {normal_volume}")
    inputs = np.asarray(window.inputs)[-MAX_SCORED_INPUTS:]
    labels = np.asarray(window.labels)[-MAX_SCORED_INPUTS:]
    confidences = np.asarray(window.confidences, dtype=np.float64)[-MAX_SCORED_INPUTS:]
    components = (
        _volume(window, normal_volume),
        _linked(window, normal_volume),
        _unique(inputs),
        _unnatural(inputs, profile),
        _entropy(inputs, profile),
        _low_confidence(confidences, profile),
        _coverage(labels, window.n_classes),
        _prada(inputs, labels),
        _perturbation(inputs, profile),
        _reconnaissance(window),
    )
    score = int(min(100, round(sum(component.points for component in components))))
    return RiskResult(
        score=score,
        components=components,
        explanation=_explain(score, components, profile is None, throttle_score, freeze_score),
        queries=window.volume,
    )


def _explain(
    score: int, components: tuple[Component, ...], no_profile: bool, throttle_score: int, freeze_score: int
) -> str:
    level = "freeze" if score >= freeze_score else "throttle" if score >= throttle_score else "no action"
    reasons = sorted((c for c in components if c.points >= 0.5), key=lambda c: -c.points)
    text = f"Extraction risk {score}/100 ({level})."
    if reasons:
        text += " Reasons, strongest first: " + "; ".join(f"{c.detail} (+{c.points:.0f})" for c in reasons) + "."
    else:
        text += " Nothing in this traffic looks like model extraction."
    if no_profile:
        text += (
            " This model has no reference profile of natural inputs, so unnatural inputs and their pixel entropy"
            " were not measured."
        )
    return text
