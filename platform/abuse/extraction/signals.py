"""The signals of extraction, one `Component` each, and the statistics they share."""

from __future__ import annotations

import math

import numpy as np

from abuse.extraction.constants import (
    COVERAGE_MAX_POINTS,
    COVERAGE_MIN_PER_CLASS,
    ENTROPY_FULL,
    ENTROPY_MAX_POINTS,
    ENTROPY_ONSET,
    LINKED_FULL,
    LINKED_MAX_POINTS,
    LOW_CONFIDENCE,
    LOW_CONFIDENCE_DEFAULT_BASELINE,
    LOW_CONFIDENCE_FULL,
    LOW_CONFIDENCE_MAX_POINTS,
    PERTURBATION_CHAIN_FULL,
    PERTURBATION_CHAIN_ONSET,
    PERTURBATION_FAMILY_FULL,
    PERTURBATION_FAMILY_MIN,
    PERTURBATION_FAMILY_ONSET,
    PERTURBATION_MAX_POINTS,
    PERTURBATION_SHARE_FULL,
    PERTURBATION_SHARE_ONSET,
    PERTURBATION_STEPS_POINTS,
    PERTURBATION_WALK_POINTS,
    PRADA_DELTA,
    PRADA_FULL,
    PRADA_MAX_DISTANCES,
    PRADA_MAX_POINTS,
    PRADA_MIN_DISTANCES,
    RECON_BURST_SECONDS,
    RECON_EARLY_SHARE,
    RECON_FULL_KINDS,
    RECON_IGNORED_CODES,
    RECON_MAX_POINTS,
    RECON_MIN_KINDS,
    SHARE_CONFIDENCE_Z,
    SHARE_MIN_INPUTS,
    UNIQUE_MAX_POINTS,
    UNIQUE_MIN_INPUTS,
    UNIQUE_ONSET,
    UNNATURAL_FULL,
    UNNATURAL_MAX_POINTS,
    UNNATURAL_ONSET,
    VOLUME_FULL,
    VOLUME_MAX_POINTS,
    VOLUME_ONSET,
)
from abuse.extraction.distances import perturbation_steps, prada_distances, prada_statistic
from abuse.extraction.profile import InputProfile
from abuse.extraction.window import Component, QueryWindow

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


# --- The components ----------------------------------------------------------------------------------------------


def volume_component(window: QueryWindow, normal_volume: float) -> Component:
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


def unique_component(inputs: np.ndarray) -> Component:
    n = inputs.shape[0]
    unique = np.unique(inputs, axis=0).shape[0] if n else 0
    ratio = unique / n if n else 0.0
    points = UNIQUE_MAX_POINTS * _ramp(ratio, UNIQUE_ONSET, 1.0) * min(1.0, n / UNIQUE_MIN_INPUTS)
    return Component(
        "unique_inputs", ratio, points, UNIQUE_MAX_POINTS, f"{_percent(ratio)} of {n:,} inputs are distinct"
    )


def _not_measured(name: str, max_points: float, why: str) -> Component:
    return Component(name, 0.0, 0.0, max_points, f"not measured: {why}")


def unnatural_component(embedded: np.ndarray, profile: InputProfile | None) -> Component:
    """`embedded`: the window's inputs in the profile's space."""
    if profile is None:
        return _not_measured("unnatural_inputs", UNNATURAL_MAX_POINTS, "the model has no reference profile")
    n = embedded.shape[0]
    far = int(np.sum(profile.distances_embedded(embedded) > profile.distance_q99)) if n else 0
    share = far / n if n else 0.0
    onset = max(UNNATURAL_ONSET, 3 * profile.unnatural_baseline)
    points = UNNATURAL_MAX_POINTS * _share_strength(far, n, onset, UNNATURAL_FULL)
    return Component(
        "unnatural_inputs",
        share,
        points,
        UNNATURAL_MAX_POINTS,
        f"{_percent(share)} of inputs are far from the model's natural inputs (natural:"
        f" {_percent(profile.unnatural_baseline)})",
    )


def entropy_component(inputs: np.ndarray, profile: InputProfile | None) -> Component:
    if profile is None:
        return _not_measured("input_entropy", ENTROPY_MAX_POINTS, "the model has no reference profile")
    n = inputs.shape[0]
    entropy = profile.entropy(inputs)
    outside = int(np.sum((entropy < profile.entropy_q01) | (entropy > profile.entropy_q99)))
    share = outside / n if n else 0.0
    points = ENTROPY_MAX_POINTS * _share_strength(outside, n, ENTROPY_ONSET, ENTROPY_FULL)
    mean = float(entropy.mean()) if n else 0.0
    return Component(
        "input_entropy",
        share,
        points,
        ENTROPY_MAX_POINTS,
        f"{_percent(share)} of inputs spread their values over the grid unlike the model's natural inputs (mean"
        f" {mean:.1f} bits; natural {profile.entropy_q01:.1f}-{profile.entropy_q99:.1f})",
    )


def low_confidence_component(confidences: np.ndarray, profile: InputProfile | None) -> Component:
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


def coverage_component(labels: np.ndarray, n_classes: int) -> Component:
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


def prada_component(points: np.ndarray, labels: np.ndarray, ids: np.ndarray | None = None) -> Component:
    """`points`: the window's inputs in the profile's space (or their codes); `ids` which are the same input."""
    distances = prada_distances(points, labels, ids=ids)
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


def perturbation_component(
    embedded: np.ndarray, profile: InputProfile | None, ids: np.ndarray | None = None
) -> Component:
    """`embedded`: the window's inputs in the profile's space; `ids` which are the same canonical input."""
    if profile is None:
        return _not_measured("perturbation_walk", PERTURBATION_MAX_POINTS, "the model has no reference profile")
    n = embedded.shape[0]
    radius = profile.perturbation_radius
    measured = perturbation_steps(embedded, radius, ids=ids)
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


def reconnaissance_component(window: QueryWindow) -> Component:
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


def linked_component(window: QueryWindow, normal_volume: float) -> Component:
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
