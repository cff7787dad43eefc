"""Reads of the red-team app."""

from redteam.models import RedTeamRun


def redteam_run_latest() -> RedTeamRun | None:
    return RedTeamRun.objects.order_by("-finished_at", "-pk").first()


def redteam_queries_to_clone(*, tier_code: str) -> int | None:
    """Queries the latest run needed for a copy with 90% agreement on this tier (its cheapest campaign), or None:
    no run yet, the tier was not attacked, or no campaign got there within the budget."""
    run = redteam_run_latest()
    if run is None:
        return None
    tier = (run.summary.get("tiers") or {}).get(tier_code) or {}
    queries = tier.get("queries_to_90")
    return int(queries) if queries is not None else None
