"""Keyed output watermarking over input regions: which answers carry the watermark, and how to prove that a suspect
model learned from them.

DAWN (Szyller et al. 2021) gives a keyed fraction of single inputs a wrong label. That proves theft by a copy that
memorises its answers, but not by a regularised one trained on natural data: a thief with a few hundred real
digits sends dozens of variants of each, all but the rare watermark input answered truly, and its copy smooths the
isolated wrong answers away (the red-team exercise measured exactly that). So the watermark here is keyed on a
coarse **region** of the input space, not on the input:

- `region_codes`: the image is reduced to its 4x4 block sums, scaled to unit length (so stroke weight does not
  matter), projected on `REGION_PROJECTIONS` keyed directions and quantised in steps of `REGION_WIDTH` with keyed
  offsets. Inputs with the same codes share a region; natural variants of one digit mostly share its region, and
  two different writers' digits mostly do not.
- HMAC-SHA256 of the region's codes under the server's `WATERMARK_SECRET` decides whether the region is marked
  (a keyed `fraction` of regions) and its watermark class, uniform over all classes. Every input of a marked
  region whose own label differs from the region's class is answered with that class: a whole neighbourhood
  carries one consistent wrong answer, which a copy learns like any other pattern of its training data.
- Nobody without the secret can tell a marked region, or guess its class; the same input always gets the same
  answer from every key.

`verify_watermark` tests a suspect region by region, exactly (see there). This module is pure: numpy and the
standard library only, no Django. It is also the bottom of the serving stack's input definition: `serving.defenses`
imports the canonical input constants from here (the probe generator must produce canonical inputs without
importing `defenses`).
"""

from __future__ import annotations

import functools
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
# collide because each starts with its own tag. v2: regions (v1 keyed single inputs). Bump the version to re-key
# every watermark choice at once.
WATERMARK_DOMAIN = b"moat.watermark.v2\x00"
REGION_GEOMETRY_DOMAIN = b"moat.watermark.v2.geometry\x00"
# The region grid and the fraction, chosen on the red-team data (README, "Watermark"). With 6 projections in steps of
# 0.10, about half of a digit's natural variants share its region, and a thief's 3,000 answers on 269 digits reach
# 5 to 15 marked regions at 1.5%: a regularised copy of them was flagged (p < 0.01) under each of 12 secrets, at
# 3,000 and at 10,000 answers. Coarser grids give too few regions to count, finer ones split a digit's variants
# over regions too small for a regularised copy to learn; 1% of regions left a quarter of those copies unflagged.
REGION_PROJECTIONS = 6
REGION_WIDTH = 0.10
# The price: the share of natural digits in marked regions, about 1.4% of a public tier's answers (README).
DEFAULT_WATERMARK_FRACTION = 0.015
DEFAULT_ALPHA = 0.01

_TWO_64 = float(2**64)
_BLOCK = 2  # 8x8 pixels -> 4x4 blocks of 2x2


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


def keyed_digests(messages: bytes, width: int, *, secret: bytes, domain: bytes) -> bytes:
    """HMAC-SHA256(secret, domain || message) of every `width`-byte message in `messages`, concatenated (32 bytes
    per message).

    The hot path's one unavoidable per-row loop. The key's HMAC state is computed once and copied per message, which
    costs about two thirds of a fresh `hmac.digest` (the key pads are not re-hashed).
    """
    keyed = hmac.new(secret, domain, "sha256")
    out = []
    for start in range(0, len(messages), width):
        state = keyed.copy()
        state.update(messages[start : start + width])
        out.append(state.digest())
    return b"".join(out)


def keyed_row_digests(rows: np.ndarray, *, secret: bytes, domain: bytes) -> bytes:
    """`keyed_digests` of every canonical row's 64 bytes (the output noise is keyed on the exact input)."""
    return keyed_digests(rows.tobytes(), N_FEATURES, secret=secret, domain=domain)


# --- Regions -------------------------------------------------------------------------------------------------------


def _block_sums_matrix() -> np.ndarray:
    """`(64, 16)` 0/1: pixel i belongs to 2x2 block j (rows of blocks, row by row), so `pixels @ it` sums blocks."""
    side = math.isqrt(N_FEATURES)
    per_side = side // _BLOCK
    matrix = np.zeros((N_FEATURES, per_side * per_side))
    for pixel in range(N_FEATURES):
        y, x = divmod(pixel, side)
        matrix[pixel, (y // _BLOCK) * per_side + x // _BLOCK] = 1.0
    matrix.setflags(write=False)
    return matrix


_BLOCK_SUMS = _block_sums_matrix()


def region_features(rows: np.ndarray) -> np.ndarray:
    """`(n, 16)` float64: each canonical row's 2x2 block sums, scaled to unit length (a blank row stays zero).

    Block sums average the pixel noise of natural variants away; the unit length makes a light and a heavy stroke
    of the same shape one point.
    """
    blocks = check_canonical(rows).astype(np.float64) @ _BLOCK_SUMS
    norms = np.sqrt(np.einsum("ij,ij->i", blocks, blocks))
    norms[norms == 0.0] = 1.0
    return blocks / norms[:, None]


@functools.lru_cache(maxsize=8)
def _region_geometry(watermark_secret: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The keyed grid: unit projection directions `(16, REGION_PROJECTIONS)` and offsets in [0, REGION_WIDTH).

    Drawn from a generator seeded by an HMAC of the secret, so every process derives the same grid and nobody
    without the secret can. Cached: the hot path must not redo it per request.
    """
    seed = int.from_bytes(hmac.digest(watermark_secret, REGION_GEOMETRY_DOMAIN, "sha256"), "big")
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(_BLOCK_SUMS.shape[1], REGION_PROJECTIONS))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    offsets = rng.uniform(0.0, REGION_WIDTH, REGION_PROJECTIONS)
    directions.setflags(write=False)
    offsets.setflags(write=False)
    return directions, offsets


def region_codes(rows: np.ndarray, *, watermark_secret: bytes) -> np.ndarray:
    """`(n, REGION_PROJECTIONS)` int8: the keyed grid cell of each canonical row. Rows with equal codes share a
    region. Unit features projected on unit directions lie in [-1, 1], so every code fits in an int8. The codes come
    from floating point: a row within about 1e-15 of a cell edge could fall on the other side on a machine whose BLAS
    sums in another order, about one input in 10^14, so every web process and the verifier agree in practice."""
    directions, offsets = _region_geometry(bytes(watermark_secret))
    cells = np.floor((region_features(rows) @ directions + offsets) * (1.0 / REGION_WIDTH))
    return cells.astype(np.int8)


@dataclass(frozen=True)
class Regions:
    """The watermark's view of a batch of rows: `codes` `(n, REGION_PROJECTIONS)` int8 (equal codes: one region),
    `marked` `(n,)` bool (the row's region is a watermark region) and `labels` `(n,)` int64 (the region's
    watermark class, uniform over all classes; defined for unmarked regions too)."""

    codes: np.ndarray
    marked: np.ndarray
    labels: np.ndarray


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"watermark fraction must be in [0, 1), got {fraction}")


def _region_words(rows: np.ndarray, watermark_secret: bytes) -> tuple[np.ndarray, np.ndarray]:
    codes = region_codes(rows, watermark_secret=watermark_secret)
    raw = keyed_digests(codes.tobytes(), REGION_PROJECTIONS, secret=watermark_secret, domain=WATERMARK_DOMAIN)
    return codes, np.frombuffer(raw, dtype=">u8").reshape(codes.shape[0], 4)


def _marked(words: np.ndarray, fraction: float) -> np.ndarray:
    return (words[:, 0].astype(np.float64) / _TWO_64) < fraction


def in_watermark_region(rows: np.ndarray, *, watermark_secret: bytes, fraction: float) -> np.ndarray:
    """`(n,)` bool: the canonical row lies in a marked region (whatever its own label)."""
    _check_fraction(fraction)
    return _marked(_region_words(rows, watermark_secret)[1], fraction)


def watermark_regions(rows: np.ndarray, n_classes: int, *, watermark_secret: bytes, fraction: float) -> Regions:
    """Each row's region, whether it is marked, and its watermark class: one HMAC per row.

    Bytes 0..7 of HMAC(secret, domain || codes), read as a number in [0, 1), below `fraction` mark the region, so
    the regions marked at a smaller fraction are a subset of those marked at a larger one (tiers with different
    fractions never contradict each other); bytes 8..15 modulo `n_classes` are its class.
    """
    _check_fraction(fraction)
    if n_classes < 2:
        raise ValueError("a watermark needs at least two classes")
    codes, words = _region_words(rows, watermark_secret)
    labels = (words[:, 1] % np.uint64(n_classes)).astype(np.int64)
    return Regions(codes=codes, marked=_marked(words, fraction), labels=labels)


def watermark_batch(
    canonical_inputs: np.ndarray,
    clean_indices: np.ndarray,
    n_classes: int,
    *,
    watermark_secret: bytes,
    fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The serving hot path's watermark decision for a batch: `(is_watermark, label_index)`.

    A row is answered with the watermark when its region is marked and the region's class is not the row's own
    clean class (a row that already is the region's class is answered truly). `label_index` is the region's class
    for every row.
    """
    # `region_features` checks the rows are canonical, once: the hot path does not repeat it here.
    regions = watermark_regions(canonical_inputs, n_classes, watermark_secret=watermark_secret, fraction=fraction)
    clean = np.asarray(clean_indices, dtype=np.int64).reshape(-1)
    if clean.shape[0] != regions.marked.shape[0]:
        raise ValueError(f"{regions.marked.shape[0]} inputs but {clean.shape[0]} clean labels")
    if clean.size and (clean.min() < 0 or clean.max() >= n_classes):
        raise ValueError(f"clean labels must be class indices in 0..{n_classes - 1}")
    return regions.marked & (regions.labels != clean), regions.labels


# --- Verification ------------------------------------------------------------------------------------------------


def sum_of_uniform_choices_tail(choices: Sequence[Sequence[int]], observed: int) -> float:
    """P(S >= observed) for S = sum of one value drawn uniformly and independently from each list of `choices`
    (non-negative integers), by convolving the per-list distributions: no approximation beyond float rounding."""
    if observed <= 0:
        return 1.0
    distribution = np.ones(1)
    for values in choices:
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0 or values.min() < 0:
            raise ValueError("every choice is a non-empty list of non-negative counts")
        step = np.bincount(values).astype(np.float64) / values.size
        distribution = np.convolve(distribution, step)
    return float(min(1.0, distribution[observed:].sum()))


@dataclass(frozen=True)
class WatermarkVerification:
    """The evidence that a suspect learned from our watermarked answers.

    - `inputs`: distinct canonical inputs examined (the same input asked twice is one observation).
    - `regions` / `watermark_inputs`: the marked regions tested (those whose class is not the majority of our own
      labels for their inputs) and how many of the inputs fall in them.
    - `matches`: on how many of those inputs the suspect answered its region's watermark class; `expected_matches`:
      the mean of that count under the null hypothesis; `p_value`: P(count >= matches) under it (see
      `verify_watermark`); `verdict`: p_value < alpha.
    - `control_inputs` / `control_matches` / `control_rate`: the same count in the unmarked regions (their would-be
      class, where it is not the region's majority). Informational: it is what a suspect's answers look like
      against classes it never saw.
    """

    inputs: int
    regions: int
    watermark_inputs: int
    matches: int
    expected_matches: float
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
    """Test whether a suspect model answers our marked regions' classes more often than an independent model could.

    `canonical_inputs` is `(n, 64)` uint8; `suspect_labels[i]` is the class index the suspect answered for row i
    (-1 for an answer that is not one of our classes: it never matches). `clean_label_fn(rows) -> indices` gives
    our own model's top-1 for canonical rows (the verifier passes the registry's model; tests pass a stand-in), so
    this function stays pure. `fraction` must be the (largest) watermark fraction the suspect's tier was served
    with.

    The inputs are grouped by region. For a marked region R with inputs I_R, m_R is the majority of our own labels
    on I_R (lowest class on ties) and w_R its watermark class; regions with w_R = m_R are skipped (they changed
    almost no answer). The statistic is the number of inputs on which the suspect answered w_R, summed over the
    tested regions.

    Null hypothesis: the suspect's answers do not depend on our watermark secret. Given the regions, their inputs
    and the suspect's answers, each w_R is then uniform over the classes other than m_R and independent of every
    other region's (one HMAC draw per region). So the null distribution of the statistic is exactly that of a sum,
    over regions, of the suspect's answer count for one class drawn uniformly from the n-1 classes other than m_R:
    computed exactly (`sum_of_uniform_choices_tail`), for ANY suspect that lacks the secret, however accurate,
    biased or confused. Answers within one region are strongly correlated (the suspect treats neighbours alike);
    counting regions as the independent draws is what keeps this test honest where a per-input binomial would
    over-accuse.
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
    regions = watermark_regions(rows, n_classes, watermark_secret=watermark_secret, fraction=fraction)
    _, first_of_region, region_of = np.unique(regions.codes, axis=0, return_index=True, return_inverse=True)
    region_of = region_of.reshape(-1)
    n_regions = first_of_region.size
    # Per region: our labels' counts (for the majority) and the suspect's answers' counts, one row per region.
    ours = np.zeros((n_regions, n_classes), dtype=np.int64)
    np.add.at(ours, (region_of, clean), 1)
    answered = np.zeros((n_regions, n_classes), dtype=np.int64)
    valid = (suspect >= 0) & (suspect < n_classes)
    np.add.at(answered, (region_of[valid], suspect[valid]), 1)
    majority = ours.argmax(axis=1)
    label = regions.labels[first_of_region]
    marked = regions.marked[first_of_region]
    sizes = ours.sum(axis=1)
    hits = answered[np.arange(n_regions), label]
    tested = marked & (label != majority)
    control = ~marked & (label != majority)
    choices = [np.delete(answered[r], majority[r]) for r in np.flatnonzero(tested)]
    matches = int(hits[tested].sum())
    control_inputs, control_matches = int(sizes[control].sum()), int(hits[control].sum())
    p_value = sum_of_uniform_choices_tail(choices, matches)
    return WatermarkVerification(
        inputs=int(rows.shape[0]),
        regions=len(choices),
        watermark_inputs=int(sizes[tested].sum()),
        matches=matches,
        expected_matches=float(sum(choice.mean() for choice in choices)),
        p_value=p_value,
        verdict=bool(choices) and p_value < alpha,
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
    """`n` distinct, natural-looking canonical inputs that all lie in marked regions: `(n, 64)` uint8.

    A suspect shows our watermark in a region only if it learned our answers there, so the best probes are the
    inputs a thief most likely asked. With `base_inputs` (canonical rows, e.g. the public data set thieves start
    from, or the inputs a suspect key sent), the base rows in marked regions come first, in their order; the rest
    are small variations of base rows, kept when they fall in a marked region. Without them, variations of
    built-in digit glyphs are used: those find a thief only if its copy generalised our answers to them, so prefer
    real inputs. Several probes may share a region; `verify_watermark` counts the region once. Deterministic for a
    given `seed`. Raises RuntimeError when `max_candidates` (default 200/fraction per probe, with a floor) run out
    first.
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
        marked = in_watermark_region(candidates, watermark_secret=watermark_secret, fraction=fraction)
        raw = candidates.tobytes()
        for i in np.flatnonzero(marked):
            row = raw[i * N_FEATURES : (i + 1) * N_FEATURES]
            if len(found) < n and row not in seen:
                seen.add(row)
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
