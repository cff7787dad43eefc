"""Reads of the red-team app."""

from dataclasses import dataclass
from typing import Any

from abuse.selectors import freeze_reviews
from accounts.models import Membership
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


def model_sections(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's sections, one per model, as format 2 writes them (`slug`, `tiers` of its retraining campaigns,
    `kind_campaigns`); a format-1 run (the digits campaigns at the top, the other models' kind campaigns in
    `models`) read the same way."""
    if summary.get("format", 1) >= 2:
        return list(summary.get("models") or [])
    digits = {"slug": (summary.get("model") or {}).get("slug", ""), "tiers": summary.get("tiers") or {},
              "campaigns": summary.get("campaigns") or [], "kind_campaigns": []}  # fmt: skip
    others = [
        {"slug": m["slug"], "tiers": {}, "campaigns": [], "kind_campaigns": m.get("campaigns") or []}
        for m in summary.get("models") or []
    ]
    return [digits, *others]


def redteam_clone_measurements() -> list[CloneMeasurement]:
    """Every model and tier the latest run attacked, with its cheapest clone: the fewest queries of its retraining
    campaigns (the section's `tiers`) and of its kind's campaigns."""
    run = redteam_run_latest()
    if run is None:
        return []
    rows = []
    for section in model_sections(run.summary):
        best: dict[str, tuple[int | None, str | None]] = {
            code: (tier.get("queries_to_90"), tier.get("clone_campaign")) for code, tier in section["tiers"].items()
        }
        for campaign in section["kind_campaigns"]:
            queries = _clone_queries(campaign)
            known = best.get(campaign["tier"])
            if known is None or (queries is not None and (known[0] is None or queries < known[0])):
                best[campaign["tier"]] = (queries, campaign["name"] if queries is not None else None)
        rows += [CloneMeasurement(section["slug"], tier, queries, name) for tier, (queries, name) in best.items()]
    return rows


@dataclass(frozen=True)
class CampaignDetection:
    """How fast one campaign of a run was caught and, since, remediated: the moments its responses showed (answered
    queries and seconds from its first request) and the reviewers' decisions on its frozen organizations, read from
    the audit log now (a decision is made after the run)."""

    model_slug: str
    tier_code: str
    campaign: str
    accounts: int
    answered: int
    throttled: tuple[int, float] | None
    frozen: tuple[int, float] | None
    frozen_organizations: int
    decided_organizations: int
    seconds_to_remediate: float | None  # to the last decision, once every frozen organization has one
    decisions: tuple[str, ...]

    @property
    def minutes_to_remediate(self) -> float | None:
        return None if self.seconds_to_remediate is None else self.seconds_to_remediate / 60


def _moment(event: dict[str, Any] | None) -> tuple[int, float] | None:
    return None if not event else (int(event["queries"]), float(event["seconds"]))


def redteam_detections(run: RedTeamRun | None = None) -> list[CampaignDetection]:
    """Every campaign of `run` (default: the latest), model by model: time to detect from its summary, time to
    remediate from the reviewers' decisions since the run started. Three queries whatever the run's size."""
    run = run or redteam_run_latest()
    if run is None:
        return []
    sections = model_sections(run.summary)
    campaigns = [(s["slug"], c) for s in sections for c in [*(s.get("campaigns") or []), *s["kind_campaigns"]]]
    emails = {email for _, campaign in campaigns for email in campaign.get("emails") or []}
    organizations = dict(Membership.objects.filter(user__email__in=emails).values_list("user__email", "organization"))
    reviews = freeze_reviews(organization_ids=set(organizations.values()), since=run.started_at)
    rows = []
    for slug, campaign in campaigns:
        own = [reviews[o] for o in {organizations.get(e) for e in campaign.get("emails") or []} if o in reviews]
        decided = [review for review in own if review.decided_at is not None]
        rows.append(
            CampaignDetection(
                model_slug=slug,
                tier_code=campaign["tier"],
                campaign=campaign["name"],
                accounts=int(campaign.get("accounts", 1)),
                answered=int(campaign["queries"]),
                throttled=_moment(campaign.get("first_throttle")),
                frozen=_moment(campaign.get("first_freeze")),
                frozen_organizations=len(own),
                decided_organizations=len(decided),
                seconds_to_remediate=(
                    max(review.seconds_to_decision for review in decided) if own and len(decided) == len(own) else None
                ),
                decisions=tuple(sorted({review.decision for review in decided})),
            )
        )
    return rows


@dataclass(frozen=True)
class ModelRedTeam:
    """One model in a run, as the console's red-team page shows it: its tiers' figures (the summary's `tiers`:
    queries to 90%, cost to clone, the daily quota in force and the recommended one) and its campaigns' detection."""

    slug: str
    tiers: list[dict[str, Any]]
    detections: list[CampaignDetection]


def redteam_models(run: RedTeamRun | None = None) -> list[ModelRedTeam]:
    """Every model of `run` (default: the latest) with its tiers and `redteam_detections`."""
    run = run or redteam_run_latest()
    if run is None:
        return []
    detections = redteam_detections(run)
    return [
        ModelRedTeam(
            slug=section["slug"],
            # Public tiers first, the cheapest first (a run's JSON keeps no order of its own).
            tiers=sorted(section["tiers"].values(), key=lambda t: (not t["public"], t["limits"]["per_day"])),
            detections=[d for d in detections if d.model_slug == section["slug"]],
        )
        for section in model_sections(run.summary)
    ]
