"""What the console reads of a red-team run: per model and campaign, the time to detect from the run's summary and
the time to remediate from the reviewers' decisions recorded since."""

import copy
from datetime import datetime, timedelta

import pytest

from abuse.models import AuditAction, AuditEntry
from redteam.selectors import redteam_detections, redteam_models
from redteam.services import redteam_run_record
from tests.factories import member

pytestmark = pytest.mark.django_db

STARTED = datetime.fromisoformat("2026-11-22T13:00:00+00:00")


def _audit(email: str, action: str, minutes: float, *, staff=None) -> None:
    from accounts.models import User

    organization = User.objects.get(email=email).membership.organization
    AuditEntry.objects.create(
        created_at=STARTED + timedelta(minutes=minutes), actor=staff, action=action, organization_id=organization.pk,
        actor_label=staff.email if staff else "abuse jobs", reason="test",
    )  # fmt: skip


@pytest.fixture
def ring_summary(summary) -> dict:
    """The summary with a ring of two accounts on free, both frozen by the jobs during the run."""
    summary = copy.deepcopy(summary)
    freeze = {"account": "digits/free/sybil/2", "kind": "frozen", "queries": 1_320, "account_queries": 660,
              "seconds": 139.0, "detail": ""}  # fmt: skip
    ring = {**summary["models"][0]["campaigns"][0], "name": "sybil", "accounts": 2, "queries": 1_320,
            "emails": ["collector1@harvest.example", "collector2@harvest.example"], "first_freeze": freeze,
            "first_throttle": {**freeze, "kind": "throttled", "queries": 1_040, "seconds": 110.0}}  # fmt: skip
    summary["models"][0]["campaigns"].append(ring)
    return summary


def test_time_to_detect_comes_from_the_run_and_time_to_remediate_from_the_reviewers_decisions(ring_summary):
    staff = member(is_staff=True, email="reviewer@moat.example")
    for email in ("ops@free-uniform.example", "collector1@harvest.example", "collector2@harvest.example"):
        member(email=email)
    redteam_run_record(summary=ring_summary)
    _audit("ops@free-uniform.example", AuditAction.FREEZE, 2)
    _audit("collector1@harvest.example", AuditAction.FREEZE, 3)
    _audit("collector2@harvest.example", AuditAction.FREEZE, 3)

    rows = {(row.tier_code, row.campaign): row for row in redteam_detections()}
    uniform, ring = rows[("free", "uniform")], rows[("free", "sybil")]
    assert (uniform.frozen, uniform.throttled, uniform.answered) == ((740, 81.0), None, 740)
    assert (ring.accounts, ring.throttled, ring.frozen) == (2, (1_040, 110.0), (1_320, 139.0))
    assert (ring.frozen_organizations, ring.decided_organizations, ring.seconds_to_remediate) == (2, 0, None)
    assert rows[("pro", "natural")].frozen_organizations == 0  # never frozen: nothing to remediate

    # The reviewer suspends one ring member, then clears the other: the ring is remediated at the last decision.
    _audit("collector1@harvest.example", AuditAction.SUSPEND, 33, staff=staff)
    ring = next(row for row in redteam_detections() if row.campaign == "sybil")
    assert (ring.decided_organizations, ring.seconds_to_remediate) == (1, None)
    _audit("collector2@harvest.example", AuditAction.FALSE_POSITIVE, 63, staff=staff)
    _audit("ops@free-uniform.example", AuditAction.UNFREEZE, 12, staff=staff)
    rows = {row.campaign: row for row in redteam_detections()}
    assert rows["sybil"].seconds_to_remediate == 60 * 60 and rows["sybil"].minutes_to_remediate == 60
    assert rows["sybil"].decisions == (AuditAction.FALSE_POSITIVE, AuditAction.SUSPEND)
    assert rows["uniform"].seconds_to_remediate == 10 * 60


def test_every_model_of_the_run_has_its_tiers_and_detections(summary):
    assert redteam_models() == []
    table = {**copy.deepcopy(summary["models"][0]), "slug": "breast-cancer"}
    redteam_run_record(summary={**summary, "models": [*summary["models"], table]})
    models = redteam_models()
    assert [m.slug for m in models] == ["digits", "breast-cancer"]
    assert [t["code"] for t in models[1].tiers] == ["free", "pro", "enterprise"]
    assert {d.model_slug for d in models[1].detections} == {"breast-cancer"}
    assert len(models[1].detections) == len(table["campaigns"])
