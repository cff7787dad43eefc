"""What the red-team exercise measures, model by model: what the measurement holds of a model (`Reference`: its
held-out rows and the full model's labels, the served variants' labellers, the attacker's public rows), the copies a
retraining campaign's answers train and how they agree with the full model, the watermark's verdict on them, and
each model's section of the summary. The attacker's side (`campaigns`, `strategies`, `copies`) never reads any of
it but the copies' recipes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from redteam import measure
from redteam.campaigns import FROZEN, CampaignLog, event_summary
from redteam.copies import (
    LABEL_RECIPE,
    LIGHT_RECIPE,
    LOGIT_RECIPE,
    LOGITS,
    SOFT,
    logit_targets,
    predict_labels,
    soft_targets,
    train_copy,
)
from redteam.model_kinds import ModelKindReference, attacked_model, model_summary
from redteam.public_data import public_rows
from serving.input_schema import InputSchema
from serving.ml.mlp import MLPWeights
from serving.registry.selectors import active_version, model_list, model_watermark, version_classifier
from serving.watermark import RegionWatermark
from serving.watermark_verification import verify_watermark
from tiers.models import Tier

if TYPE_CHECKING:
    from redteam.exercise import CampaignPlan

TITLES = {
    "equation_solving": "equation solving on probabilities (logits)",
    "uniform": "retraining, uniform random inputs",
    "natural": "retraining, natural data",
    "adaptive": "adaptive retraining near the copy's boundary",
    "perturbation": "perturbation walk",
    "sybil": "sybil ring, natural data",
}


@dataclass(frozen=True, eq=False)
class Reference:
    """What the measurement holds of one model: its held-out rows (codes) and the full model's labels for them, the
    served variants' labellers (for the watermark), the attacker's pool (codes, None when it has none), and the
    tiers as they stand."""

    slug: str
    schema: InputSchema
    heldout: np.ndarray
    full_labels: np.ndarray
    labellers: dict[str, Callable[[np.ndarray], np.ndarray]]  # variant -> codes -> class indices
    classes: list[str]
    pool: np.ndarray | None
    pool_labels: np.ndarray | None
    tiers: dict[str, Tier]
    versions: dict[str, str]
    watermark: RegionWatermark  # the model's regions under the server's secret, as the API serves them

    def labeller(self, variant: str) -> Callable[[np.ndarray], np.ndarray]:
        """The labels of the variant a tier is served; a model with no such variant serves its full one."""
        return self.labellers.get(variant, self.labellers["full"])


def load_reference(slug: str) -> Reference:
    """Read a model's active versions and held-out set from the registry (verified artifacts), and the public rows
    its attacker may own (`redteam.public_data`). Raises RuntimeError as `attacked_model` does."""
    model, full, heldout = attacked_model(slug)
    labellers, versions = {}, {}
    for variant in ("full", "defended"):
        version = active_version(model_slug=slug, variant=variant)
        if version is None:
            continue
        classifier = version_classifier(version=version)
        labellers[variant] = lambda codes, c=classifier: c.logits(c.schema.values(codes)).argmax(axis=1)
        versions[variant] = version.version
    watermark = model_watermark(model=model)
    schema = watermark.schema
    public = public_rows(slug, full.provenance or {})
    return Reference(
        slug=slug,
        schema=schema,
        heldout=heldout[0],
        full_labels=labellers["full"](heldout[0]),
        labellers=labellers,
        classes=list(model.class_labels),
        pool=None if public is None else schema.codes(public[0]),
        pool_labels=None if public is None else np.asarray(public[1], dtype=np.int64),
        tiers={tier.code: tier for tier in Tier.objects.filter(code__in=["free", "pro", "enterprise"])},
        versions=versions,
        watermark=watermark,
    )


def attacked_models() -> list[str]:
    """The models the exercise attacks by default: every model with an active full version and a held-out set."""
    return [
        model.slug
        for model in model_list()
        if active_version(model_slug=model.slug, variant="full") is not None and model.heldout_path
    ]


def _copy_agreement(
    reference: Reference, codes: np.ndarray, targets: np.ndarray, kind: str, *, light: bool = False
) -> tuple[float, MLPWeights]:
    recipe = LOGIT_RECIPE if kind == LOGITS else LIGHT_RECIPE if light else LABEL_RECIPE
    schema = reference.schema
    copy = train_copy(schema.values(codes), targets, kind=kind, recipe=recipe, bounds=(schema.low, schema.high), seed=0)
    copy_labels = predict_labels(copy, schema.values(reference.heldout))
    return measure.agreement(copy_labels, reference.full_labels), copy


def _watermark(reference: Reference, tier: Tier, codes: np.ndarray, copy: MLPWeights) -> dict[str, Any] | None:
    fraction = float((tier.defenses or {}).get("watermark_fraction", 0.0))
    if fraction <= 0:
        return None  # this tier's answers carry no watermark (enterprise)
    result = verify_watermark(
        codes,
        predict_labels(copy, reference.schema.values(codes)),
        clean_label_fn=reference.labeller(tier.model_variant),
        n_classes=len(reference.classes),
        watermark=reference.watermark,
        fraction=fraction,
        alpha=measure.WATERMARK_ALPHA,
    )
    return {
        "regions": result.regions,
        "watermark_inputs": result.watermark_inputs,
        "matches": result.matches,
        "p_value": result.p_value,
        "verdict": result.verdict,
    }


def measure_campaign(
    plan: CampaignPlan, log: CampaignLog, reference: Reference, *, emails: list[str]
) -> dict[str, Any]:
    """Train the attacker's copy on the first N answers for every evaluation point, measure it; refine between
    checkpoints around the 90% point; the watermark verdict of every public copy (and, from WATERMARK_MIN_ANSWERS
    answers on, of a lighter-fitting copy of the same answers too)."""
    X = log.answered_inputs()
    if plan.target == LOGITS:
        probabilities = log.answered_probabilities()
        if probabilities is None or probabilities.shape[0] != X.shape[0]:
            raise RuntimeError(f"{plan.tier} answered no probability vectors: equation solving needs them")
        targets = logit_targets(probabilities)
    else:
        targets = soft_targets(log.answered_labels(), log.answered_confidences(), n_classes=len(reference.classes))
    tier = reference.tiers[plan.tier]
    curve: dict[int, dict[str, Any]] = {}

    def point(queries: int, *, checkpoint: bool) -> None:
        value, copy = _copy_agreement(reference, X[:queries], targets[:queries], plan.target)
        curve[queries] = {
            "queries": queries,
            "agreement": value,
            "checkpoint": checkpoint,
            "watermark": _watermark(reference, tier, X[:queries], copy),
        }
        if curve[queries]["watermark"] and queries >= measure.WATERMARK_MIN_ANSWERS and plan.target == SOFT:
            # The same answers, a thief that fits them less closely: does the verdict survive?
            light_value, light_copy = _copy_agreement(reference, X[:queries], targets[:queries], SOFT, light=True)
            curve[queries]["light"] = {
                "agreement": light_value,
                "watermark": _watermark(reference, tier, X[:queries], light_copy),
            }

    checkpoints = [c for c in measure.CHECKPOINTS if c <= max(log.answered, 1)]
    for queries in measure.evaluation_points(log.answered, checkpoints):
        point(queries, checkpoint=queries in measure.CHECKPOINTS)
    measured = sorted(curve)
    first = measure.queries_to_reach([(q, curve[q]["agreement"]) for q in measured])
    if first is not None:
        below = max([q for q in measured if q < first], default=0)
        for queries in measure.refinement_points(below, first):
            point(queries, checkpoint=False)
    ordered = [curve[q] for q in sorted(curve)]
    frozen = [e for e in log.events if e.kind == FROZEN]
    throttle = log.first("throttled")
    return {
        "name": plan.name,
        "tier": plan.tier,
        "title": TITLES[plan.name],
        "target": "probabilities (logits)" if plan.target == LOGITS else "label + confidence",
        "accounts": plan.accounts,
        "emails": emails,
        "queries": log.answered,
        "requests": log.requests,
        "seconds": round(log.seconds, 1),
        "stopped": log.stopped,
        "curve": ordered,
        "final_agreement": curve[log.answered]["agreement"] if log.answered else 0.0,
        "queries_to_90": measure.queries_to_reach([(p["queries"], p["agreement"]) for p in ordered]),
        "first_throttle": event_summary(throttle),
        "first_freeze": event_summary(frozen[0] if frozen else None),
        "frozen_accounts": len({e.account for e in frozen}),
        "all_frozen": len({e.account for e in frozen}) == plan.accounts,
        "events": [event_summary(e) for e in log.events],
        "cost": str(measure.usage_cost(log.answered, tier.price_per_1000_overage)),
        "base_fees": str((tier.monthly_base_price * plan.accounts).quantize(Decimal("0.01"))),
    }


def baselines(reference: Reference) -> dict[str, float | None]:
    """Two yardsticks: the public tiers' variant's own agreement with the full model, and a copy trained on the
    public pool's own labels with no query at all (what natural data gives a thief before it pays for anything;
    None when it has none)."""
    defended = measure.agreement(reference.labeller("defended")(reference.heldout), reference.full_labels)
    public = None
    if reference.pool is not None:
        labels = reference.pool_labels
        targets = soft_targets(labels, np.ones(labels.size), n_classes=len(reference.classes))
        public, _ = _copy_agreement(reference, reference.pool, targets, SOFT)
    return {"defended_agreement": defended, "public_labels_agreement": public}


def tier_summaries(reference: Reference, campaigns: list[dict[str, Any]], *, days: int) -> dict[str, dict[str, Any]]:
    """Per tier: the cheapest clone measured (fewest queries to 90%), what it costs, the limits in force and the
    recommended daily quota (the model's extraction budget: see `measure.recommended_daily_quota`)."""
    out = {}
    for code, tier in reference.tiers.items():
        runs = [c for c in campaigns if c["tier"] == code and c["queries_to_90"] is not None]
        cheapest = min(runs, key=lambda c: c["queries_to_90"], default=None)
        queries = cheapest["queries_to_90"] if cheapest else None
        out[code] = {
            "code": code,
            "name": tier.name,
            "public": tier.is_public,
            "price_per_1000": str(tier.price_per_1000_overage),
            "monthly_base_price": str(tier.monthly_base_price),
            "limits": {
                "per_minute": tier.requests_per_minute,
                "per_hour": tier.requests_per_hour,
                "per_day": tier.requests_per_day,
                "monthly_included": tier.monthly_included_requests,
                "max_batch": tier.max_batch_size,
            },
            "queries_to_90": queries,
            "clone_campaign": cheapest["name"] if cheapest else None,
            "cost_to_clone": str(measure.usage_cost(queries, tier.price_per_1000_overage)) if queries else None,
            "recommended_daily_quota": measure.recommended_daily_quota(queries, days) if tier.is_public else None,
        }
    return out


def model_section(
    reference: Reference,
    kind: ModelKindReference,
    campaigns: list[dict[str, Any]],
    kind_campaigns: list[dict[str, Any]],
    yardsticks: dict[str, float | None],
    *,
    budget: int,
    days: int,
) -> dict[str, Any]:
    """One model's section of the summary: who it is, its retraining campaigns and what they cost per tier, the
    targets they met, and its kind's campaigns (`model_summary`)."""
    section = {
        **model_summary(kind, kind_campaigns),
        "versions": reference.versions,
        "heldout_rows": int(reference.heldout.shape[0]),
        "pool_rows": 0 if reference.pool is None else int(reference.pool.shape[0]),
        "checkpoints": [c for c in measure.CHECKPOINTS if c <= budget],
        "days": days,
        "baselines": yardsticks,
        "campaigns": campaigns,
        "tiers": tier_summaries(reference, campaigns, days=days),
    }
    section["targets"] = [{"text": t.text, "met": t.met, "detail": t.detail} for t in measure.evaluate_targets(section)]
    return section
