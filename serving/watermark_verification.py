"""Proving a copy: whether a suspect model learned our watermark regions (`verify_watermark`, an exact test over
regions), and the probes that ask it where it would have learned them (`watermark_probe_inputs`). The regions
themselves, and what they cost honest users, are `serving.watermark`'s. Pure: numpy and the standard library."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from serving.input_schema import InputSchema
from serving.watermark import DEFAULT_ALPHA, DEFAULT_WATERMARK_FRACTION, RegionWatermark

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
    - `regions` / `watermark_inputs`: the marked regions the inputs fall in and how many inputs they hold.
    - `matches`: on how many of those inputs the suspect answered its region's watermark class, in the regions
      whose class is not the majority of our own labels there (where the watermark changed answers);
      `expected_matches`: the mean of that count under the null hypothesis; `p_value`: P(count >= matches) under
      it (see `verify_watermark`); `verdict`: p_value < alpha.
    - `control_inputs` / `control_matches` / `control_rate`: the same count in the unmarked regions (their would-be
      class, where it is not the region's majority). Informational: what a suspect's answers look like against
      classes it never saw.
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
    watermark: RegionWatermark,
    fraction: float = DEFAULT_WATERMARK_FRACTION,
    alpha: float = DEFAULT_ALPHA,
) -> WatermarkVerification:
    """Test whether a suspect model answers our marked regions' classes more often than an independent model could.

    `canonical_inputs` are the model's canonical rows (n, d); `suspect_labels[i]` is the class index the suspect
    answered for row i (-1 for an answer that is not one of our classes: it never matches). `clean_label_fn(rows)
    -> indices` gives our own model's top-1 for canonical rows (the verifier passes the registry's model; tests pass
    a stand-in), so this function stays pure. `fraction` must be the (largest) watermark fraction the suspect's
    tier was served with.

    The inputs are grouped by region. For a marked region R with inputs I_R, m_R is the majority of our own labels
    on I_R (lowest class on ties) and w_R its watermark class. The statistic counts, over marked regions with
    w_R != m_R, the inputs on which the suspect answered w_R; a region whose class is its majority changed almost no
    answer and counts 0.

    Null hypothesis: the suspect's answers do not depend on our watermark secret. Given the regions, their inputs,
    which are marked and the suspect's answers, each w_R is then uniform over all the classes and independent of
    every other region's (bytes of its own keyed hash that the marking does not read). So the null distribution of the
    statistic is exactly that of a sum, over marked regions, of one draw uniform over the classes of "the suspect's
    count for that class, or 0 for m_R": computed exactly (`sum_of_uniform_choices_tail`), for ANY suspect that
    lacks the secret, however accurate, biased or confused. Drawing over all classes (m_R included, worth 0) keeps
    the test alive for two classes, where w_R != m_R leaves no choice. Answers within one region are strongly
    correlated (the suspect treats neighbours alike); counting regions as the independent draws is what keeps this
    test honest where a per-input binomial would over-accuse.
    """
    rows = watermark.schema.check_codes(canonical_inputs)
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
    regions = watermark.regions(rows, n_classes)
    _, first_of_region, region_of = np.unique(regions.cells, axis=0, return_index=True, return_inverse=True)
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
    marked = watermark.marked(regions.keys[first_of_region], fraction=fraction)
    sizes = ours.sum(axis=1)
    hits = answered[np.arange(n_regions), label]
    changed = label != majority
    counted = answered.copy()
    counted[np.arange(n_regions), majority] = 0
    choices = [counted[r] for r in np.flatnonzero(marked)]
    matches = int(hits[marked & changed].sum())
    control = ~marked & changed
    control_inputs, control_matches = int(sizes[control].sum()), int(hits[control].sum())
    p_value = sum_of_uniform_choices_tail(choices, matches)
    return WatermarkVerification(
        inputs=int(rows.shape[0]),
        regions=len(choices),
        watermark_inputs=int(sizes[marked].sum()),
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


def _perturb(base: np.ndarray, schema: InputSchema, spread: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Natural-looking variations of canonical rows: a third of the features moved by a tenth of their reference
    spread (at least one grid step), and for images a shift by one pixel now and then."""
    rows = base.astype(np.int64)
    if schema.is_image:
        images = rows.reshape(-1, schema.height, schema.width, schema.channels)
        shifted = rng.random(images.shape[0]) < 0.2
        for i in np.flatnonzero(shifted):
            images[i] = np.roll(images[i], shift=tuple(int(s) for s in rng.integers(-1, 2, 2)), axis=(0, 1))
        rows = images.reshape(rows.shape)
    moved = rng.random(rows.shape) < 1 / 3
    step = np.maximum(1.0, 0.1 * spread)
    jitter = np.rint(rng.normal(0.0, 1.0, rows.shape) * step).astype(np.int64)
    rows = np.where(moved, rows + jitter, rows)
    return np.clip(rows, 0, schema.top_code).astype(schema.code_dtype)


def watermark_probe_inputs(
    n: int,
    *,
    watermark: RegionWatermark,
    base_inputs: np.ndarray,
    fraction: float = DEFAULT_WATERMARK_FRACTION,
    seed: int,
    max_candidates: int | None = None,
) -> np.ndarray:
    """`n` distinct, natural-looking canonical inputs that all lie in marked regions: (n, d) of the schema's codes.

    A suspect shows our watermark in a region only if it learned our answers there, so the best probes are the
    inputs a thief most likely asked: `base_inputs` (canonical rows, e.g. the model's reference data, the public
    data set thieves start from, or the inputs a suspect key sent). The base rows in marked regions come first, in
    their order; the rest are small variations of base rows, kept when they fall in a marked region. Several probes
    may share a region; `verify_watermark` counts the region once. Deterministic for a given `seed`. Raises
    RuntimeError when `max_candidates` (default 200/fraction per probe, with a floor) run out first.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"probes need a watermark fraction in (0, 1), got {fraction}")
    schema = watermark.schema
    base = schema.check_codes(base_inputs)
    if base.shape[0] == 0:
        raise ValueError("base_inputs is empty")
    rng = np.random.default_rng(seed)
    spread = base.astype(np.float64).std(axis=0)
    budget = max_candidates if max_candidates is not None else max(10_000, int(200 * max(n, 1) / fraction))
    width = schema.row_bytes
    found: list[bytes] = []
    seen: set[bytes] = set()

    def consider(candidates: np.ndarray) -> None:
        marked = watermark.in_marked_region(candidates, fraction=fraction)
        raw = np.ascontiguousarray(candidates).tobytes()
        for i in np.flatnonzero(marked):
            row = raw[i * width : (i + 1) * width]
            if len(found) < n and row not in seen:
                seen.add(row)
                found.append(row)

    consider(base[:budget])
    tried = min(budget, base.shape[0])
    while len(found) < n:
        if tried >= budget:
            raise RuntimeError(f"found {len(found)} of {n} watermark probes in {budget} candidates")
        size = min(4096, budget - tried)
        consider(_perturb(base[rng.integers(0, base.shape[0], size=size)], schema, spread, rng))
        tried += size
    return schema.decode_rows(b"".join(found)).copy()
