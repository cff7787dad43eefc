"""Reads of the red-team app."""

from dataclasses import dataclass
from typing import Any

from redteam.models import RedTeamRun

# A copy at this agreement with the full model is a clone (the digits campaigns' "queries to 90%").
CLONE_AGREEMENT = 0.9


def redteam_run_latest() -> RedTeamRun | None:
    return RedTeamRun.objects.order_by("-finished_at", "-pk").first()


@dataclass(frozen=True)
class CloneMeasurement:
    """The cheapest clone of one model on one tier in the latest run: the queries it took and the campaign (None:
    attacked, but no campaign got there within the budget)."""

    model_slug: str
    tier_code: str
    queries: int | None
    campaign: str | None


def _clone_queries(campaign: dict[str, Any]) -> int | None:
    """The queries one model-kind campaign needed for a clone: equation solving's queries to its target agreement
    (at least CLONE_AGREEMENT), or all the queries of a boundary or tree recovery that agrees at least that well.
    An inversion reconstructs inputs, not the model: never a clone."""
    result = campaign.get("result") or {}
    if campaign.get("name") == "equation_solving":
        reached = result.get("queries_to_target")
        target = result.get("target_agreement") or 0.0
        return int(reached) if reached is not None and target >= CLONE_AGREEMENT else None
    if campaign.get("name") in ("lowd_meek", "path_finding") and (result.get("agreement") or 0.0) >= CLONE_AGREEMENT:
        return int(result["queries"])
    return None


def redteam_clone_measurements() -> list[CloneMeasurement]:
    """Every model and tier the latest run attacked, with its cheapest clone: the digits demo's retraining
    campaigns (`summary["tiers"]`) and each other model's kind-specific ones (`summary["models"]`)."""
    run = redteam_run_latest()
    if run is None:
        return []
    summary = run.summary
    digits_slug = (summary.get("model") or {}).get("slug", "")
    rows = [
        CloneMeasurement(digits_slug, code, tier.get("queries_to_90"), tier.get("clone_campaign"))
        for code, tier in (summary.get("tiers") or {}).items()
    ]
    for model in summary.get("models") or []:
        best: dict[str, tuple[int | None, str | None]] = {}
        for campaign in model.get("campaigns") or []:
            queries = _clone_queries(campaign)
            known = best.get(campaign["tier"])
            if known is None or (queries is not None and (known[0] is None or queries < known[0])):
                best[campaign["tier"]] = (queries, campaign["name"] if queries is not None else None)
        rows += [CloneMeasurement(model["slug"], tier, queries, name) for tier, (queries, name) in best.items()]
    return rows
