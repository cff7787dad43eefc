"""The organization page: the evidence a reviewer reads before acting, each panel from data the test makes."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from abuse.models import Appeal, Ring, RingMember, RiskAssessment, RiskState, SignupLink
from abuse.services import Actor, audit_record
from apikeys.models import ApiKey, KeyState
from console.selectors import hourly_inputs
from tests.console.conftest import log_call
from tests.console.test_overview import bars
from tests.factories import OrganizationFactory, SignupRecordFactory, member, raw_key_for

pytestmark = pytest.mark.django_db


def section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start : page.index("</section>", start)]


def component(name: str, points: float, max_points: float = 30) -> dict:
    return {"name": name, "value": points / 100, "points": points, "max_points": max_points, "detail": f"{name} high"}


def test_standing_and_risk_components_over_time(organization, staff_client):
    RiskState.objects.create(
        organization=organization, score=88, previous_score=60, level="freeze",
        top_reasons=["Inputs hug the decision boundary"], explanation="Looks like an extraction sweep.",
    )  # fmt: skip
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    runs = [(20, [("boundary", 15), ("volume", 5)]), (88, [("boundary", 30), ("volume", 28), ("coverage", 30)])]
    for index, (score, parts) in enumerate(runs):
        bucket = start + timedelta(minutes=5 * index)
        RiskAssessment.objects.create(
            organization=organization, bucket=bucket, window_start=bucket - timedelta(hours=24), window_end=bucket,
            queries=1000 * (index + 1), score=score, level="freeze" if score >= 80 else "normal",
            components=[component(name, points) for name, points in parts], explanation=f"Explained {score}.",
        )  # fmt: skip

    page = staff_client.get(f"/console/organizations/{organization.pk}/").content.decode()

    standing = section(page, "standing")
    assert "88/100 (&#9650; +28)" in standing
    assert "Inputs hug the decision boundary" in standing and "Looks like an extraction sweep." in standing
    risk = section(page, "risk")
    columns = re.findall(r'<g class="risk-column" data-key="([^"]+)" data-score="(\d+)">(.*?)</g>', risk, re.S)
    assert [(key, score) for key, score, _ in columns] == [
        ("2026-11-20T10:00:00+00:00", "20"), ("2026-11-20T10:05:00+00:00", "88")
    ]  # fmt: skip
    last = dict(re.findall(r'data-component="([^"]+)" data-points="([^"]+)"', columns[1][2]))
    assert last == {"boundary": "30.0", "volume": "28.0", "coverage": "30.0"}
    assert '<polyline class="risk-score-line"' in risk
    # The latest assessment's components, as a table.
    assert re.search(
        r'data-component="coverage"><td>coverage</td><td class="num">0.300</td><td class="num">30 / 30</td>', risk
    )
    assert "Explained 88." in risk


def test_query_volume_per_hour_and_confidence_histogram(organization, staff_client):
    now = timezone.now()
    log_call(organization, batch_size=10, created_at=now)
    log_call(organization, batch_size=5, created_at=now - timedelta(hours=2), confidences=[0.15] * 5)
    log_call(organization, batch_size=3, created_at=now - timedelta(hours=49))
    log_call(organization, status=429, batch_size=8, limit_window="minute")
    log_call(OrganizationFactory(), batch_size=99)

    page = staff_client.get(f"/console/organizations/{organization.pk}/").content.decode()

    volume = bars(page, "volume-chart")
    assert len(volume) == 48
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    assert volume[hour.isoformat()] == "10"
    assert volume[(hour - timedelta(hours=2)).isoformat()] == "5"
    assert sum(int(v) for v in volume.values()) == 15
    assert list(bars(page, "org-confidence-chart").values()) == ["0", "5", "0", "0", "0", "0", "0", "0", "0", "10"]
    assert hourly_inputs(organization_id=organization.pk, now=now, hours=3)[-1] == (hour, 10)


def test_recent_calls_and_throttle_events(organization, staff_client):
    raw_key_for(organization, name="scraper")
    key = ApiKey.objects.get(organization=organization)
    start = timezone.now() - timedelta(hours=1)
    for index in range(55):
        log_call(organization, api_key=key, created_at=start + timedelta(seconds=index), client_ip="203.0.113.9")
    log_call(organization, api_key=key, status=429, limit_window="minute", error_code="rate_limited")
    log_call(organization, api_key=key, status=429, limit_window="day", created_at=start - timedelta(days=1))

    page = staff_client.get(f"/console/organizations/{organization.pk}/").content.decode()

    calls = section(page, "queries")
    assert calls.count("<tr data-request-id=") == 50
    assert calls.count(f"<code>{key.display}</code>") == 50
    assert "203.0.113.9" in calls and "rate_limited" in calls
    first_row = calls[calls.index("<tr data-request-id=") :]
    assert "rate_limited" in first_row[: first_row.index("</tr>")]  # newest first
    throttled = section(page, "throttled")
    assert re.findall(r'data-throttle-window="(\w+)"', throttled) == ["minute", "day"]


def test_signup_evidence_ring_graph_keys_appeals_and_audit(organization, owner, staff_client):
    SignupRecordFactory(user=owner, ip_address="198.51.100.23", user_agent="curl/8.5")
    twin = member(email="twin@example.com").membership.organization
    third = member(email="third@example.com").membership.organization
    low, high = sorted([organization.pk, twin.pk])
    SignupLink.objects.create(low_id=low, high_id=high, signal="subnet24", weight=0.6, evidence="198.51.100.0/24")
    SignupLink.objects.create(low_id=low, high_id=high, signal="card", weight=1.0, evidence="card fp_123")
    SignupLink.objects.create(low_id=twin.pk, high_id=third.pk, signal="email_pattern", weight=0.5, evidence="a1@x")
    ring = Ring.objects.create(score=77)
    for member_org in (organization, twin, third):
        RingMember.objects.create(ring=ring, organization=member_org)
    RiskState.objects.create(organization=organization, score=70, ring=ring)
    raw_key_for(organization, name="prod")
    ApiKey.objects.filter(organization=organization).update(
        state=KeyState.FROZEN, state_reason="Ring member.", state_changed_by="abuse jobs"
    )
    Appeal.objects.create(organization=organization, submitted_by=owner, message="We are one company.")
    audit_record(
        actor=Actor.jobs(), action="ring_found", reason="Three accounts, one card.", organization_id=organization.pk
    )
    audit_record(actor=Actor.jobs(), action="note", reason="Someone else's.", organization_id=twin.pk)

    page = staff_client.get(f"/console/organizations/{organization.pk}/").content.decode()

    evidence = section(page, "signup-evidence")
    assert "198.51.100.23" in evidence and "curl/8.5" in evidence
    assert re.findall(r'data-link-signal="(\w+)"', evidence) == ["card", "subnet24"]  # strongest first
    assert f'href="/console/organizations/{twin.pk}/">{twin.name}</a>' in evidence and "card fp_123" in evidence
    ring_html = section(page, "ring")
    assert f'href="/console/rings/{ring.pk}/"' in ring_html
    assert sorted(re.findall(r'<g class="ring-node[^"]*" data-organization="(\d+)"', ring_html)) == sorted(
        str(pk) for pk in (organization.pk, twin.pk, third.pk)
    )
    assert f'class="ring-node ring-node-current" data-organization="{organization.pk}"' in ring_html
    assert len(re.findall(r'class="ring-edge"', ring_html)) == 2
    assert f'data-low="{low}" data-high="{high}" data-signals="card, subnet24"' in ring_html
    keys = section(page, "keys")
    assert 'data-key-state="frozen"' in keys and "Ring member." in keys and "by abuse jobs" in keys
    assert "We are one company." in section(page, "appeals")
    audit = section(page, "audit")
    assert "Three accounts, one card." in audit and "Someone else&#x27;s." not in audit


def test_an_organization_with_nothing_recorded_renders(organization, staff_client):
    page = staff_client.get(f"/console/organizations/{organization.pk}/").content.decode()
    assert "The jobs have not assessed this organization yet." in page
    assert "Not in a ring." in page and "No API calls recorded." in page and "No appeals." in page


def test_the_page_costs_the_same_queries_however_much_evidence_there_is(
    organization, owner, staff_client, django_assert_max_num_queries
):
    ring = Ring.objects.create(score=50)
    RingMember.objects.create(ring=ring, organization=organization)
    with django_assert_max_num_queries(40) as empty:
        staff_client.get(f"/console/organizations/{organization.pk}/")
    raw_key_for(organization)
    key = ApiKey.objects.get(organization=organization)
    for index in range(20):
        log_call(
            organization, api_key=key, status=429 if index % 2 else 200, limit_window="minute" if index % 2 else ""
        )
        other = OrganizationFactory()
        RingMember.objects.create(ring=ring, organization=other)
        low, high = sorted([organization.pk, other.pk])
        SignupLink.objects.create(low_id=low, high_id=high, signal="card", weight=1.0, evidence="fp")
        Appeal.objects.create(organization=organization, submitted_by=owner, message="m")
        audit_record(actor=Actor.jobs(), action="note", reason="n", organization_id=organization.pk)
    with django_assert_max_num_queries(len(empty.captured_queries)):
        staff_client.get(f"/console/organizations/{organization.pk}/")
