"""Keyed output watermarking (DAWN, Szyller et al. 2021): which answers carry the watermark, and how to prove that a
suspect model learned from them.

For a small keyed fraction of inputs the public API answers a deterministic wrong label. Which inputs, and which
wrong label, are functions of an HMAC-SHA256 of the canonical input under the server's `WATERMARK_SECRET`, so

- the same input gets the same answer from every key and on every repetition (nothing to average away), and
- nobody without the secret can tell a watermark answer from an ordinary one, or guess the watermark label.

A model trained on our answers reproduces those wrong labels far more often than chance; an independent model
cannot (see `verify_watermark` for the statistics). This module is pure: numpy and the standard library only, no
Django. It is also the bottom of the serving stack's input definition: `serving.defenses` imports the canonical
input constants from here (the probe generator must produce canonical inputs without importing `defenses`).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# --- The canonical input space: 64 pixels (8x8), integer intensities 0..16, one uint8 byte each ------------------
N_FEATURES = 64
PIXEL_MIN = 0
PIXEL_MAX = 16

# Domain separation: the watermark and the noise may one day share a secret by mistake; their HMAC messages never
# collide because each starts with its own tag. Bump the version to re-key every watermark choice at once.
WATERMARK_DOMAIN = b"moat.watermark.v1\x00"
DEFAULT_WATERMARK_FRACTION = 0.005
DEFAULT_ALPHA = 0.01

_TWO_64 = float(2**64)


def check_canonical(rows: np.ndarray) -> np.ndarray:
    """Return `rows` as a C-contiguous `(n, 64)` uint8 array, or raise ValueError.

    Canonical rows are what `serving.defenses.canonicalize` makes. Anything else (floats, other widths) is refused
    rather than converted: hashing a differently encoded row would silently change every keyed decision.
    """
    rows = np.asarray(rows)
    if rows.dtype != np.uint8:
        raise ValueError(f"canonical inputs must be uint8, got {rows.dtype}; use defenses.canonicalize first")
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[1] != N_FEATURES:
        raise ValueError(f"canonical inputs must have shape (n, {N_FEATURES}), got {rows.shape}")
    if rows.size and int(rows.max()) > PIXEL_MAX:
        raise ValueError(f"canonical inputs hold values 0..{PIXEL_MAX}")
    return np.ascontiguousarray(rows)


def _row_bytes(canonical_row: np.ndarray | bytes) -> bytes:
    if isinstance(canonical_row, bytes | bytearray):
        if len(canonical_row) != N_FEATURES:
            raise ValueError(f"a canonical row is {N_FEATURES} bytes, got {len(canonical_row)}")
        return bytes(canonical_row)
    rows = check_canonical(canonical_row)
    if rows.shape[0] != 1:
        raise ValueError(f"expected one canonical row, got {rows.shape[0]}")
    return rows.tobytes()


def _digest(row_bytes: bytes, watermark_secret: bytes) -> bytes:
    return hmac.digest(watermark_secret, WATERMARK_DOMAIN + row_bytes, "sha256")


def keyed_row_digests(rows: np.ndarray, *, secret: bytes, domain: bytes) -> bytes:
    """HMAC-SHA256(secret, domain || row's 64 bytes) of every canonical row, concatenated (32 bytes per row).

    The hot path's one unavoidable per-row loop. The key's HMAC state is computed once and copied per row, which
    costs about two thirds of a fresh `hmac.digest` (the key pads are not re-hashed).
    """
    keyed = hmac.new(secret, domain, "sha256")
    raw = rows.tobytes()
    out = []
    for start in range(0, len(raw), N_FEATURES):
        state = keyed.copy()
        state.update(raw[start : start + N_FEATURES])
        out.append(state.digest())
    return b"".join(out)


def _draw(digest: bytes) -> float:
    """Bytes 0..7 of the digest as a uniform number in [0, 1): the watermark lottery ticket of the input."""
    return int.from_bytes(digest[:8], "big") / _TWO_64


def _alternative(digest: bytes, clean_index: int, n_classes: int) -> int:
    """The watermark label: a keyed class `r`, or when `r` is the clean class, a keyed other class.

    `r` does not depend on the clean label at all, so the served and the verified watermark label agree even when
    the model that answered (the defended one) and the model the verifier consults (the full one) disagree, unless
    `r` happens to be one of their two labels. The result is uniform over the n-1 classes other than the clean one:
    P(j) = 1/n + (1/n)(1/(n-1)) = 1/(n-1) for every j != clean, which is what the null hypothesis relies on.
    """
    candidate = int.from_bytes(digest[8:16], "big") % n_classes
    if candidate != clean_index:
        return candidate
    step = 1 + int.from_bytes(digest[16:24], "big") % (n_classes - 1)
    return (clean_index + step) % n_classes


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"watermark fraction must be in [0, 1), got {fraction}")


def _check_classes(clean_index: int, n_classes: int) -> None:
    if n_classes < 2:
        raise ValueError("a watermark needs at least two classes")
    if not 0 <= clean_index < n_classes:
        raise ValueError(f"clean_index {clean_index} is not a class index in 0..{n_classes - 1}")


def is_watermark_input(canonical_row: np.ndarray | bytes, *, watermark_secret: bytes, fraction: float) -> bool:
    """True when this canonical input (one (64,) uint8 row, or its 64 bytes) is answered with the watermark label.

    The decision is `HMAC(secret, input)`'s first 8 bytes, read as a number in [0, 1), being below `fraction`: the
    same input is always in or always out, and the inputs chosen at a smaller fraction are a subset of those chosen
    at a larger one (so tiers with different fractions never contradict each other).
    """
    _check_fraction(fraction)
    return _draw(_digest(_row_bytes(canonical_row), watermark_secret)) < fraction


def watermark_label_index(
    canonical_row: np.ndarray | bytes, clean_index: int, n_classes: int, *, watermark_secret: bytes
) -> int:
    """The class index a watermark answer for this input carries: keyed, deterministic, never `clean_index`."""
    _check_classes(clean_index, n_classes)
    return _alternative(_digest(_row_bytes(canonical_row), watermark_secret), clean_index, n_classes)


def watermark_batch(
    canonical_inputs: np.ndarray,
    clean_indices: np.ndarray,
    n_classes: int,
    *,
    watermark_secret: bytes,
    fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Both watermark decisions for a batch, with one HMAC per row (the serving hot path).

    Returns `(is_watermark, label_index)`: a bool array, and an int array that holds the watermark label for every
    row (as if it were a watermark input; the verifier uses the others as a control group). Same results as
    `is_watermark_input` / `watermark_label_index` row by row.
    """
    _check_fraction(fraction)
    rows = check_canonical(canonical_inputs)
    clean = np.asarray(clean_indices, dtype=np.int64).reshape(-1)
    if clean.shape[0] != rows.shape[0]:
        raise ValueError(f"{rows.shape[0]} inputs but {clean.shape[0]} clean labels")
    if n_classes < 2:
        raise ValueError("a watermark needs at least two classes")
    if clean.size and (clean.min() < 0 or clean.max() >= n_classes):
        raise ValueError(f"clean labels must be class indices in 0..{n_classes - 1}")
    # The same reading of the digest as `_draw` and `_alternative`, vectorised: four big-endian 64-bit words.
    words = np.frombuffer(keyed_row_digests(rows, secret=watermark_secret, domain=WATERMARK_DOMAIN), dtype=">u8")
    words = words.reshape(rows.shape[0], 4)
    chosen = (words[:, 0].astype(np.float64) / _TWO_64) < fraction
    candidate = (words[:, 1] % np.uint64(n_classes)).astype(np.int64)
    step = 1 + (words[:, 2] % np.uint64(n_classes - 1)).astype(np.int64)
    labels = np.where(candidate != clean, candidate, (clean + step) % n_classes)
    return chosen, labels


# --- Verification ------------------------------------------------------------------------------------------------


def binomial_upper_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), computed exactly term by term.

    Each term C(n, k) p^k (1-p)^(n-k) is formed in log space (`math.lgamma`), so neither the binomial coefficient
    nor a tiny p^k over- or underflows for thousands of trials; the terms are summed relative to the largest
    (log-sum-exp). No normal approximation: the counts here are small, where approximations are worst.
    """
    if trials < 0 or successes < 0:
        raise ValueError("successes and trials must be non-negative")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if successes == 0:
        return 1.0
    if successes > trials:
        return 0.0
    if probability == 0.0:
        return 0.0
    if probability == 1.0:
        return 1.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    log_n_fact = math.lgamma(trials + 1)
    logs = [
        log_n_fact - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p + (trials - k) * log_q
        for k in range(successes, trials + 1)
    ]
    top = max(logs)
    total = top + math.log(math.fsum(math.exp(value - top) for value in logs))
    return min(1.0, math.exp(total))


@dataclass(frozen=True)
class WatermarkVerification:
    """The evidence that a suspect learned from our watermarked answers.

    - `inputs`: distinct canonical inputs examined (duplicates are dropped: the same input asked twice is one
      observation, not two — counting it twice would fake independence).
    - `watermark_inputs` / `matches`: how many of them are watermark inputs, and on how many of those the suspect
      answered exactly our watermark label.
    - `chance_rate`: the match probability under the null hypothesis "the suspect never saw our watermark answers",
      1/(n_classes-1) (see `verify_watermark`); `p_value`: P(X >= matches), X ~ Binomial(watermark_inputs,
      chance_rate); `verdict`: p_value < alpha.
    - `control_inputs` / `control_matches` / `control_rate`: the same count on the non-watermark inputs (their
      would-be watermark label). Informational: an honest model's rate sits well below `chance_rate`; a suspect
      that answers randomly sits near 1/n_classes; neither can exceed `chance_rate` without the secret.
    """

    inputs: int
    watermark_inputs: int
    matches: int
    chance_rate: float
    p_value: float
    verdict: bool
    alpha: float
    control_inputs: int
    control_matches: int
    control_rate: float | None

    def to_dict(self) -> dict[str, int | float | bool | None]:
        return asdict(self)


def verify_watermark(
    canonical_inputs: np.ndarray,
    suspect_labels: Sequence[int] | np.ndarray,
    *,
    clean_label_fn: Callable[[np.ndarray], np.ndarray],
    n_classes: int,
    watermark_secret: bytes,
    fraction: float = DEFAULT_WATERMARK_FRACTION,
    alpha: float = DEFAULT_ALPHA,
) -> WatermarkVerification:
    """Test whether a suspect model reproduces our watermark labels more often than an independent model could.

    `canonical_inputs` is `(n, 64)` uint8; `suspect_labels[i]` is the class index the suspect answered for row i
    (-1 for an answer that is not one of our classes: it never matches). `clean_label_fn(rows) -> indices` gives
    our own model's top-1 for canonical rows (the verifier passes the registry's model; tests pass a stand-in), so
    this function stays pure. `fraction` must be the (largest) watermark fraction the suspect's tier was served
    with.

    Null hypothesis: the suspect's answers do not depend on our watermark secret. For a watermark input x, our
    label w(x) is uniform over the n-1 classes other than the clean one, and pseudo-random given x. Whatever the
    suspect answers, s(x): if s(x) is the clean class it never matches, otherwise it matches with probability
    exactly 1/(n-1). So the number of matches is stochastically dominated by Binomial(watermark_inputs, 1/(n-1))
    for ANY suspect that lacks the secret — however accurate, biased or confused — and the test's false positive
    rate is at most alpha. We chose this conservative null over estimating the suspect's own base rate (the
    control group): an estimate carries its own error into the p-value, while a thief that memorised our
    watermark answers matches at a rate near 1, so a handful of watermark inputs suffice
    ((1/9)^3 < 0.002 with ten classes). The control rate is still reported, for the operator.
    """
    rows = check_canonical(canonical_inputs)
    suspect = np.asarray(suspect_labels, dtype=np.int64).reshape(-1)
    if suspect.shape[0] != rows.shape[0]:
        raise ValueError(f"{rows.shape[0]} inputs but {suspect.shape[0]} suspect labels")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    # One observation per distinct input: the first answer wins (a deterministic suspect answers all copies alike).
    _, first = np.unique(rows, axis=0, return_index=True)
    first = np.sort(first)
    rows, suspect = rows[first], suspect[first]
    clean = np.asarray(clean_label_fn(rows), dtype=np.int64).reshape(-1)
    if clean.shape[0] != rows.shape[0]:
        raise ValueError("clean_label_fn must return one class index per input")
    chosen, watermark_labels = watermark_batch(
        rows, clean, n_classes, watermark_secret=watermark_secret, fraction=fraction
    )
    hits = suspect == watermark_labels
    watermark_inputs = int(chosen.sum())
    matches = int(hits[chosen].sum())
    control_inputs = int((~chosen).sum())
    control_matches = int(hits[~chosen].sum())
    chance_rate = 1.0 / (n_classes - 1)
    p_value = binomial_upper_tail(matches, watermark_inputs, chance_rate)
    return WatermarkVerification(
        inputs=int(rows.shape[0]),
        watermark_inputs=watermark_inputs,
        matches=matches,
        chance_rate=chance_rate,
        p_value=p_value,
        verdict=watermark_inputs > 0 and p_value < alpha,
        alpha=alpha,
        control_inputs=control_inputs,
        control_matches=control_matches,
        control_rate=(control_matches / control_inputs) if control_inputs else None,
    )


# --- Probes ------------------------------------------------------------------------------------------------------

# Crude 8x8 glyphs of the ten digits ('#' = 16, '+' = 10, '.' = 4, ' ' = 0), the seeds of synthetic probes when the
# operator supplies no inputs of their own. They only need to look like the API's ordinary traffic.
_GLYPHS = (
    ("  .##.  ", " .#  #. ", " #.  .# ", " #    # ", " #    # ", " #.  .# ", " .#  #. ", "  .##.  "),
    ("   .#   ", "  .##   ", " .+.#   ", "    #   ", "    #   ", "    #   ", "    #   ", "  .###. "),
    ("  .##.  ", " .#  #. ", "     #. ", "    .#  ", "   .#.  ", "  .#.   ", " .#.    ", " .####. "),
    ("  .##.  ", " .#  #. ", "     #. ", "   ##.  ", "     #. ", "      # ", " .#  #. ", "  .##.  "),
    ("    .#  ", "   .##  ", "  .+ #  ", " .#  #  ", " #####. ", "     #  ", "     #  ", "     #  "),
    (" .####. ", " .#     ", " .#     ", " .###.  ", "     #. ", "      # ", " .#  #. ", "  .##.  "),
    ("   .#.  ", "  .#.   ", " .#     ", " .###.  ", " #.  #. ", " #    # ", " .#  #. ", "  .##.  "),
    (" .####. ", "     #. ", "    .#  ", "    #.  ", "   .#   ", "   #.   ", "   #    ", "   #    "),
    ("  .##.  ", " .#  #. ", " .#  #. ", "  .##.  ", " .#  #. ", " #    # ", " .#  #. ", "  .##.  "),
    ("  .##.  ", " .#  #. ", " #    # ", " .#  ## ", "  .##.# ", "     #. ", "    .#  ", "  .#.   "),
)
_GLYPH_VALUES = {" ": 0, ".": 4, "+": 10, "#": 16}


def _glyph_rows() -> np.ndarray:
    return np.array(
        [[_GLYPH_VALUES[ch] for line in glyph for ch in line] for glyph in _GLYPHS],
        dtype=np.uint8,
    )


def _perturb(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Natural variation of canonical rows: a shift by at most one pixel, intensity jitter, and a little noise."""
    images = base.reshape(-1, 8, 8).astype(np.int16)
    out = np.empty_like(images)
    shifts = rng.integers(-1, 2, size=(images.shape[0], 2))
    for i in range(images.shape[0]):
        out[i] = np.roll(images[i], shift=(int(shifts[i, 0]), int(shifts[i, 1])), axis=(0, 1))
    jitter = rng.integers(-2, 3, size=out.shape)
    out = np.where(out > 0, out + jitter, np.where(rng.random(out.shape) < 0.03, 2, 0))
    return np.clip(out, PIXEL_MIN, PIXEL_MAX).astype(np.uint8).reshape(-1, N_FEATURES)


def watermark_probe_inputs(
    n: int,
    *,
    watermark_secret: bytes,
    fraction: float = DEFAULT_WATERMARK_FRACTION,
    seed: int,
    base_inputs: np.ndarray | None = None,
    max_candidates: int | None = None,
) -> np.ndarray:
    """`n` distinct, natural-looking canonical inputs that are all watermark inputs: `(n, 64)` uint8.

    A suspect shows our watermark on an input only if it learned our answer for that very input (or one close
    enough that its model generalises the label), so the best probes are the inputs a thief most likely asked.
    With `base_inputs` (canonical rows, e.g. the public data set thieves start from, or the inputs a suspect key
    sent), the base rows that are themselves watermark inputs come first, in their order; the rest are small
    variations of base rows, kept when they are watermark inputs. Without them, variations of built-in digit
    glyphs are used: those find a thief only if it generalised from nearby watermark answers, so prefer real
    inputs. Deterministic for a given `seed`. Raises RuntimeError when `max_candidates` (default 200/fraction per
    probe, with a floor) run out first.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"probes need a watermark fraction in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    base = _glyph_rows() if base_inputs is None else check_canonical(base_inputs)
    if base.shape[0] == 0:
        raise ValueError("base_inputs is empty")
    budget = max_candidates if max_candidates is not None else max(10_000, int(200 * max(n, 1) / fraction))
    found: list[bytes] = []
    seen: set[bytes] = set()

    def consider(candidates: np.ndarray) -> None:
        raw = candidates.tobytes()
        for i in range(candidates.shape[0]):
            row = raw[i * N_FEATURES : (i + 1) * N_FEATURES]
            if len(found) < n and row not in seen:
                seen.add(row)
                if _draw(_digest(row, watermark_secret)) < fraction:
                    found.append(row)

    if base_inputs is not None:
        consider(base[:budget])
    tried = min(budget, base.shape[0]) if base_inputs is not None else 0
    while len(found) < n:
        if tried >= budget:
            raise RuntimeError(f"found {len(found)} of {n} watermark probes in {budget} candidates")
        size = min(4096, budget - tried)
        consider(_perturb(base[rng.integers(0, base.shape[0], size=size)], rng))
        tried += size
    return np.frombuffer(b"".join(found), dtype=np.uint8).reshape(n, N_FEATURES).copy()
