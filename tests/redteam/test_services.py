"""Runs are stored whole; the console reads the latest run's queries to 90% per tier."""

import copy
from datetime import datetime

import pytest

from redteam.models import RedTeamRun
from redteam.selectors import CloneMeasurement, redteam_clone_measurements, redteam_run_latest
from redteam.services import redteam_run_record

pytestmark = pytest.mark.django_db


def test_a_run_is_stored_with_its_summary(summary):
    run = redteam_run_record(summary=summary, report_dir="/srv/moat/redteam-report")
    run.refresh_from_db()
    assert run.summary == summary
    assert run.finished_at == datetime.fromisoformat("2026-11-22T13:18:00+00:00")
    assert (run.base_url, run.budget, run.report_dir) == ("http://127.0.0.1:8766", 3000, "/srv/moat/redteam-report")


def _by_tier(model: str) -> dict[str, int | None]:
    return {m.tier_code: m.queries for m in redteam_clone_measurements() if m.model_slug == model}


def test_the_latest_run_decides_the_queries_to_clone(summary):
    assert redteam_clone_measurements() == []  # no run yet
    redteam_run_record(summary=summary)
    later = copy.deepcopy({**summary, "finished_at": "2026-11-23T09:00:00+00:00"})
    later["models"][0]["tiers"]["pro"]["queries_to_90"] = 420
    redteam_run_record(summary=later)
    assert redteam_run_latest().summary["finished_at"] == later["finished_at"]
    digits = _by_tier("digits")
    assert digits["pro"] == 420
    assert digits["free"] is None  # measured, but not reached
    assert "gold" not in digits  # never attacked


def _kind_campaign(name: str, tier: str, **result) -> dict:
    return {"name": name, "tier": tier, "result": result}


def test_a_model_is_cloned_by_its_cheapest_campaign_retraining_or_of_its_kind(summary):
    campaign = _kind_campaign
    pro = {**summary["models"][0]["tiers"]["pro"], "queries_to_90": 2_000, "clone_campaign": "natural"}
    tree = {"slug": "churn-tree", "tiers": {"pro": pro}, "kind_campaigns": [
        campaign("path_finding", "enterprise", queries=501, agreement=1.0),
        campaign("path_finding", "pro", queries=900, agreement=0.52),  # leaves collided: no clone
        campaign("lowd_meek", "pro", queries=1_240, agreement=0.95),
        campaign("equation_solving", "pro", queries=400, queries_to_target=None, target_agreement=0.99),
        campaign("inversion", "free", queries=300),  # reconstructs inputs, not the model
    ]}  # fmt: skip
    redteam_run_record(summary={**summary, "models": [*summary["models"], tree]})

    assert {m for m in redteam_clone_measurements() if m.model_slug == "churn-tree"} == {
        CloneMeasurement("churn-tree", "enterprise", 501, "path_finding"),
        CloneMeasurement("churn-tree", "pro", 1_240, "lowd_meek"),  # cheaper than its natural-data retraining
        CloneMeasurement("churn-tree", "free", None, None),
    }


def test_a_run_stored_in_the_first_format_is_still_read(legacy_summary):
    tree = {"slug": "churn-tree", "campaigns": [_kind_campaign("path_finding", "pro", queries=501, agreement=1.0)]}
    redteam_run_record(summary={**legacy_summary, "models": [tree]})
    assert _by_tier("digits") == {"free": None, "pro": 173, "enterprise": 100}
    assert _by_tier("churn-tree") == {"pro": 501}


def test_a_document_that_is_not_a_summary_is_refused(summary):
    with pytest.raises(KeyError):
        redteam_run_record(summary={"budget": 1})
    assert not RedTeamRun.objects.exists()
