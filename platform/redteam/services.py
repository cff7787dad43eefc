"""Writes of the red-team app."""

from datetime import datetime
from typing import Any

from django.db import transaction

from redteam.models import RedTeamRun


@transaction.atomic
def redteam_run_record(*, summary: dict[str, Any], report_dir: str = "") -> RedTeamRun:
    """Store a run's summary (as `run_exercise` returned it, or as read back from a report's summary.json).
    Raises KeyError or ValueError for a document that is not a summary."""
    if not isinstance(summary, dict):
        raise ValueError("not a red-team summary: not a JSON object")
    sections = "models" if summary.get("format") == 2 else "tiers"  # format 1 kept its digits sections at the top
    for key in ("started_at", "finished_at", "base_url", "budget", sections):
        if key not in summary:
            raise KeyError(f"not a red-team summary: no {key!r}")
    return RedTeamRun.objects.create(
        started_at=datetime.fromisoformat(summary["started_at"]),
        finished_at=datetime.fromisoformat(summary["finished_at"]),
        base_url=str(summary["base_url"])[:255],
        budget=int(summary["budget"]),
        summary=summary,
        report_dir=report_dir[:500],
    )
