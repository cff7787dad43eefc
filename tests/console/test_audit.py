"""The audit log page (every entry, newest first, filtered, paginated) and the ring page."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from abuse.models import AuditEntry, Ring, RingLevel, RingMember, RingStatus, RiskAssessment, SignupLink
from abuse.services import Actor, audit_record
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def logged(page: str) -> list[str]:
    return re.findall(r'<td class="audit-reason">(.*?)</td>', page)


def test_every_entry_newest_first_with_actor_and_organization(staff_client, reviewer):
    first, second = OrganizationFactory(name="First Co"), OrganizationFactory(name="Second Co")
    ring = Ring.objects.create(score=50)
    audit_record(actor=Actor.jobs(), action="throttle", reason="r1", organization_id=first.pk, details={"factor": 0.25})
    audit_record(actor=Actor(user=reviewer), action="freeze", reason="r2", organization_id=second.pk)
    audit_record(actor=Actor.jobs(), action="ring_found", reason="r3", ring_id=ring.pk)
    audit_record(actor=Actor.jobs(), action="note", reason="r4", organization_id=987654)  # since deleted

    page = staff_client.get("/console/audit/").content.decode()

    assert logged(page) == ["r4", "r3", "r2", "r1"]
    assert "reviewer@moat.example" in page and "abuse jobs" in page
    assert f'href="/console/organizations/{second.pk}/">Second Co</a>' in page
    assert f'href="/console/rings/{ring.pk}/">ring {ring.pk}</a>' in page
    assert "#987654 (deleted)" in page
    assert "factor: 0.25" in page and "Keys frozen" in page


def test_filter_by_organization_and_action(staff_client):
    first, second = OrganizationFactory(), OrganizationFactory()
    for organization in (first, second):
        for action in ("warn", "freeze"):
            audit_record(
                actor=Actor.jobs(), action=action, reason=f"{action} {organization.pk}", organization_id=organization.pk
            )

    def reasons(query: str) -> list[str]:
        return logged(staff_client.get(f"/console/audit/?{query}").content.decode())

    assert reasons(f"organization={first.pk}") == [f"freeze {first.pk}", f"warn {first.pk}"]
    assert reasons("action=warn") == [f"warn {second.pk}", f"warn {first.pk}"]
    assert reasons(f"organization={second.pk}&action=freeze") == [f"freeze {second.pk}"]
    # An invalid filter shows the form error and the whole log rather than failing.
    response = staff_client.get("/console/audit/?organization=abc&action=nope")
    assert response.status_code == 200 and len(logged(response.content.decode())) == 4
    assert "errorlist" in response.content.decode()


def test_the_audit_log_is_paginated(staff_client):
    organization = OrganizationFactory()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for index in range(55):
        AuditEntry.objects.create(
            created_at=start + timedelta(minutes=index), actor_label="abuse jobs", action="note",
            reason=f"n{index:02d}", organization_id=organization.pk,
        )  # fmt: skip

    first = staff_client.get(f"/console/audit/?organization={organization.pk}").content.decode()
    second = staff_client.get(f"/console/audit/?organization={organization.pk}&page=2").content.decode()

    assert logged(first) == [f"n{i:02d}" for i in range(54, 4, -1)]
    assert logged(second) == [f"n{i:02d}" for i in range(4, -1, -1)]
    assert f'href="?organization={organization.pk}&amp;page=2"' in first


def test_the_ring_page_shows_members_links_risk_and_audit(staff_client):
    members = [OrganizationFactory(name=f"Member {i}") for i in range(3)]
    ids = sorted(org.pk for org in members)
    ring = Ring.objects.create(score=72)
    merged = Ring.objects.create(score=10, status=RingStatus.MERGED, merged_into=ring)
    for organization in members:
        RingMember.objects.create(ring=ring, organization=organization)
    SignupLink.objects.create(low_id=ids[0], high_id=ids[1], signal="card", weight=1.0, evidence="fp_9")
    SignupLink.objects.create(low_id=ids[1], high_id=ids[2], signal="subnet24", weight=0.5, evidence="192.0.2.0/24")
    SignupLink.objects.create(low_id=ids[0], high_id=OrganizationFactory().pk, signal="ua", weight=0.2, evidence="x")
    bucket = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    coverage = {"name": "coverage", "value": 0.9, "points": 40, "max_points": 40, "detail": "d"}
    RiskAssessment.objects.create(
        ring=ring, bucket=bucket, window_start=bucket - timedelta(hours=24), window_end=bucket, queries=9000,
        score=81, level="freeze", components=[coverage], explanation="",
    )  # fmt: skip
    audit_record(actor=Actor.jobs(), action="ring_found", reason="Found it.", ring_id=ring.pk)

    page = staff_client.get(f"/console/rings/{ring.pk}/").content.decode()

    assert sorted(int(pk) for pk in re.findall(r'<tr data-organization="(\d+)">', page)) == ids
    assert re.findall(r'data-link-signal="(\w+)"', page) == ["card", "subnet24"]  # only links between members
    assert "fp_9" in page and "192.0.2.0/24" in page
    assert len(re.findall(r'<g class="ring-edge"', page)) == 2
    assert '<g class="risk-column" data-key="2026-11-20T09:00:00+00:00" data-score="81">' in page
    assert "Found it." in page
    merged_page = staff_client.get(f"/console/rings/{merged.pk}/").content.decode()
    assert f'href="/console/rings/{ring.pk}/">ring {ring.pk}</a>' in merged_page


@pytest.mark.parametrize(("level", "shown"), [(RingLevel.CERTAIN, "certain"), (RingLevel.LIKELY, "likely")])
def test_the_ring_page_says_whether_the_sign_ups_prove_the_ring_or_make_it_likely(staff_client, level, shown):
    ring = Ring.objects.create(score=66.4, level=level)
    page = staff_client.get(f"/console/rings/{ring.pk}/").content.decode()
    assert f'<span data-ring-level="{level}">{shown}</span>' in page
