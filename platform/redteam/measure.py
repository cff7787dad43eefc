"""The red team's arithmetic, as pure functions: agreement, the points a copy is measured at, the queries a copy
needed for 90% agreement, what the queries cost, the daily quota that would make cloning slow, and which of the
issue's targets a run met. Numbers in, numbers out; no HTTP, no database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

CHECKPOINTS = (100, 300, 1_000, 3_000, 10_000)
CLONE_AGREEMENT = 0.90
# The watermark target applies to copies trained on at least this many public answers: a natural-data thief's
# inputs then reach about 5 to 15 of the public tiers' marked regions (1.5% of regions), enough for p < 0.01 when its
# copy answers the class of about half of them.
WATERMARK_MIN_ANSWERS = 3_000
WATERMARK_ALPHA = 0.01
# Default of `--days`: cloning to 90% should take one account longer than a billing month, so that a thief pays
# (or keeps a free account in good standing) through at least one invoice and one monthly review before it has a
# copy, and the abuse jobs' 24-hour windows see it every day of that month.
DEFAULT_DAYS = 30
# Targets of the issue, for the public tiers.
UNNATURAL_CAMPAIGNS = ("uniform", "adaptive", "perturbation")
NATURAL_CAMPAIGNS = ("natural", "sybil")
FREEZE_BEFORE_QUERIES = 2_000
UNNATURAL_MAX_AGREEMENT = 0.80
EQUATION_SOLVING_AGREEMENT = 0.99
# The two copies a retraining campaign trains on the same answers (`redteam.copies`: LABEL_RECIPE, LIGHT_RECIPE).
CLOSE_COPY = "close"
LIGHT_COPY = "light"


def agreement(copy_labels: np.ndarray, reference_labels: np.ndarray) -> float:
    """Share of rows on which the copy's top-1 equals the reference's. Raises ValueError on empty or mismatched
    arrays."""
    copy_labels, reference_labels = np.asarray(copy_labels), np.asarray(reference_labels)
    if copy_labels.shape != reference_labels.shape or copy_labels.size == 0:
        raise ValueError(f"cannot compare {copy_labels.shape} labels with {reference_labels.shape}")
    return float(np.mean(copy_labels == reference_labels))


def evaluation_points(answered: int, checkpoints: Iterable[int] = CHECKPOINTS) -> list[int]:
    """The query counts a campaign's copy is measured at: every checkpoint it reached, and the count it ended at
    (its copy at the freeze, or at the end of the budget) when that is not a checkpoint."""
    points = sorted({point for point in checkpoints if 0 < point <= answered})
    if answered > 0 and answered not in points:
        points.append(answered)
    return points


def refinement_points(below: int, at_or_above: int, *, count: int = 3) -> list[int]:
    """Up to `count` counts strictly between two measured ones, evenly spaced on a log scale: where to look for
    the 90% point more closely once a checkpoint reached it."""
    if at_or_above - below < 2:
        return []
    low = max(below, 1)
    ratio = (at_or_above / low) ** (1 / (count + 1))
    points = {round(low * ratio**i) for i in range(1, count + 1)}
    return sorted(point for point in points if below < point < at_or_above)


def queries_to_reach(curve: Sequence[tuple[int, float]], threshold: float = CLONE_AGREEMENT) -> int | None:
    """The fewest queries at which a measured copy agreed at least `threshold` with the full model, or None."""
    reached = [queries for queries, value in curve if value >= threshold]
    return min(reached) if reached else None


def usage_cost(queries: int, price_per_1000: Decimal) -> Decimal:
    """What `queries` cost at a tier's price per 1,000, in cents rounded half up (the console's formula)."""
    return (Decimal(price_per_1000) / Decimal(1000) * Decimal(queries)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def recommended_daily_quota(queries_to_clone: int | None, days: int) -> int | None:
    """The largest daily quota under which one account needs more than `days` days to send `queries_to_clone`
    queries (quota * days < queries); None when nothing was cloned. 0 means no quota is small enough."""
    if days < 1:
        raise ValueError("days must be at least 1")
    if queries_to_clone is None:
        return None
    return max(math.ceil(queries_to_clone / days) - 1, 0)


@dataclass(frozen=True)
class Target:
    text: str
    met: bool | None  # None: not measured in this run
    detail: str


def copies(point: Mapping[str, Any]) -> list[tuple[str, float, Mapping[str, Any] | None]]:
    """Every copy measured at one point of a curve, as (recipe, agreement, watermark verdict or None): the copy
    that fits its answers closely, and where one was trained, the lighter one (`light`)."""
    found = [(CLOSE_COPY, point["agreement"], point.get("watermark"))]
    if point.get("light"):
        found.append((LIGHT_COPY, point["light"]["agreement"], point["light"].get("watermark")))
    return found


def _campaigns(summary: Mapping[str, Any], *, tiers: Iterable[str], names: Iterable[str]) -> list[dict]:
    tiers, names = set(tiers), set(names)
    return [c for c in summary["campaigns"] if c["tier"] in tiers and c["name"] in names]


def _not_run(text: str) -> Target:
    return Target(text, None, "not run")


def evaluate_targets(summary: Mapping[str, Any]) -> list[Target]:
    """The issue's targets, each judged from the summary's numbers."""
    public = [code for code, tier in summary["tiers"].items() if tier["public"]]
    targets = []

    text = f"Enterprise: equation solving reaches >= {EQUATION_SOLVING_AGREEMENT:.0%} agreement"
    runs = _campaigns(summary, tiers=["enterprise"], names=["equation_solving"])
    # The exact attack of a linear model's kind (`redteam.model_kinds`) solves for the model itself.
    solved = [c["result"] for c in summary.get("kind_campaigns") or []
              if c["tier"] == "enterprise" and c["name"] == "equation_solving"]  # fmt: skip
    if runs or solved:
        best = max((point["agreement"] for c in runs for point in c["curve"]), default=0.0)
        details = [f"best {best:.1%}"] if runs else []
        for result in solved:
            best = max(best, result["agreement"] or 0.0)
            reached = result.get("queries_to_target")
            details.append(
                f"solved exactly: {result['agreement']:.1%}"
                + (f", {EQUATION_SOLVING_AGREEMENT:.0%} after {reached:,} queries" if reached is not None else "")
            )
        targets.append(Target(text, best >= EQUATION_SOLVING_AGREEMENT, "; ".join(details)))
    else:
        targets.append(_not_run(text))

    text = (
        f"Public tiers: uniform, adaptive and perturbation campaigns are frozen before {FREEZE_BEFORE_QUERIES:,}"
        f" queries and before their copy reaches {UNNATURAL_MAX_AGREEMENT:.0%}"
    )
    runs = _campaigns(summary, tiers=public, names=UNNATURAL_CAMPAIGNS)
    details, met = [], True
    for c in runs:
        frozen = c["first_freeze"]
        ok = (
            frozen is not None
            and frozen["queries"] < FREEZE_BEFORE_QUERIES
            and c["final_agreement"] < UNNATURAL_MAX_AGREEMENT
        )
        met = met and ok
        when = f"frozen at {frozen['queries']:,}" if frozen else "never frozen"
        details.append(f"{c['tier']} {c['name']}: {when}, copy {c['final_agreement']:.1%}")
    targets.append(Target(text, met, "; ".join(details)) if runs else _not_run(text))

    text = f"Public tiers: the sybil ring is frozen as a ring before {FREEZE_BEFORE_QUERIES:,} queries in total"
    runs = _campaigns(summary, tiers=public, names=["sybil"])
    details, met = [], True
    for c in runs:
        ok = c["all_frozen"] and c["queries"] < FREEZE_BEFORE_QUERIES
        met = met and ok
        state = "every account frozen" if c["all_frozen"] else f"{c['frozen_accounts']} of {c['accounts']} frozen"
        details.append(f"{c['tier']}: {state}, {c['queries']:,} queries in total")
    targets.append(Target(text, met, "; ".join(details)) if runs else _not_run(text))

    reference = summary["baselines"]["defended_agreement"]
    text = f"Public tiers: natural-data copies are no better than the defended model's own agreement ({reference:.1%})"
    runs = _campaigns(summary, tiers=public, names=NATURAL_CAMPAIGNS)
    if runs:
        best = {
            f"{c['tier']} {c['name']}": max(agreement for point in c["curve"] for _, agreement, _ in copies(point))
            for c in runs
            if c["curve"]
        }
        met = all(value <= reference for value in best.values())
        targets.append(Target(text, met, "; ".join(f"{name}: best {value:.1%}" for name, value in best.items())))
    else:
        targets.append(_not_run(text))

    text = (
        f"Public tiers: every copy trained on >= {WATERMARK_MIN_ANSWERS:,} answers is flagged by verify_watermark"
        f" with p < {WATERMARK_ALPHA}"
    )
    checked = [
        (c, point, recipe, watermark)
        for c in _campaigns(summary, tiers=public, names=[c["name"] for c in summary["campaigns"]])
        for point in c["curve"]
        if point["queries"] >= WATERMARK_MIN_ANSWERS
        for recipe, _, watermark in copies(point)
        if watermark
    ]
    if checked:
        met = all(watermark["p_value"] < WATERMARK_ALPHA for *_, watermark in checked)
        detail = "; ".join(
            f"{c['tier']} {c['name']} at {point['queries']:,}{'' if recipe == CLOSE_COPY else f' ({recipe} copy)'}:"
            f" p = {watermark['p_value']:.2g}"
            for c, point, recipe, watermark in checked
        )
        targets.append(Target(text, met, detail))
    else:
        targets.append(Target(text, None, f"no public copy was trained on {WATERMARK_MIN_ANSWERS:,} answers"))
    return targets
