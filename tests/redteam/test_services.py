"""Runs are stored whole; the console reads the latest run's queries to 90% per tier."""

from datetime import datetime

import pytest

from redteam.models import RedTeamRun
from redteam.selectors import redteam_queries_to_clone, redteam_run_latest
from redteam.services import redteam_run_record

pytestmark = pytest.mark.django_db


def test_a_run_is_stored_with_its_summary(summary):
    run = redteam_run_record(summary=summary, report_dir="/srv/moat/redteam-report")
    run.refresh_from_db()
    assert run.summary == summary
    assert run.finished_at == datetime.fromisoformat("2026-11-22T13:18:00+00:00")
    assert (run.base_url, run.budget, run.report_dir) == ("http://127.0.0.1:8766", 3000, "/srv/moat/redteam-report")


def test_the_latest_run_decides_the_queries_to_clone(summary):
    assert redteam_queries_to_clone(tier_code="pro") is None  # no run yet
    redteam_run_record(summary=summary)
    later = {**summary, "finished_at": "2026-11-23T09:00:00+00:00"}
    later["tiers"] = {**summary["tiers"], "pro": {**summary["tiers"]["pro"], "queries_to_90": 420}}
    redteam_run_record(summary=later)
    assert redteam_run_latest().summary["finished_at"] == later["finished_at"]
    assert redteam_queries_to_clone(tier_code="pro") == 420
    assert redteam_queries_to_clone(tier_code="free") is None  # measured, but not reached
    assert redteam_queries_to_clone(tier_code="gold") is None  # never attacked


def test_a_document_that_is_not_a_summary_is_refused(summary):
    with pytest.raises(KeyError):
        redteam_run_record(summary={"budget": 1})
    assert not RedTeamRun.objects.exists()
