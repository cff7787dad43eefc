"""The overview dashboard: each panel's numbers for data the test makes, and the offline country lookup."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from abuse.models import Ring
from apikeys.models import ApiKey, KeyState
from console.geo import PRIVATE_NETWORK, UNKNOWN, countries_of, country_of
from console.selectors import confidence_histogram, requests_by_country, top_organizations_by_volume
from tests.console.conftest import log_call
from tests.factories import OrganizationFactory, SignupRecordFactory, UserFactory, member, raw_key_for

pytestmark = pytest.mark.django_db


def panel(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start : page.index("</section>", start)]


def bars(html: str, chart: str) -> dict[str, str]:
    """{data-key: data-value} of the bars (or rows) of one chart."""
    start = html.index(f'data-chart="{chart}"')
    figure = html[start : html.index("</figure>", start)]
    return dict(re.findall(r'data-key="([^"]+)" data-value="([^"]+)"', figure))


def test_top_organizations_by_inputs_served_in_the_last_hour(staff_client):
    now = timezone.now()
    big, small, old = (OrganizationFactory(name=name) for name in ("Big Scraper", "Small Shop", "Yesterday Inc"))
    log_call(big, batch_size=100, created_at=now - timedelta(minutes=5))
    log_call(big, batch_size=50, created_at=now - timedelta(minutes=50))
    log_call(big, status=429, batch_size=100, limit_window="minute")  # refused: no input served
    log_call(small, batch_size=7)
    log_call(old, batch_size=1000, created_at=now - timedelta(minutes=61))
    others = [OrganizationFactory(name=f"Filler {i}") for i in range(10)]
    for organization in others:
        log_call(organization, batch_size=2)

    page = staff_client.get("/console/").content.decode()

    top = panel(page, "top-organizations")
    rows = re.findall(r'<tr data-organization="(\d+)">.*?data-inputs>([\d,]+)<', top)
    assert len(rows) == 10
    assert rows[0] == (str(big.pk), "150") and rows[1] == (str(small.pk), "7")
    assert "Yesterday Inc" not in top
    assert bars(top, "top-organizations-chart")[str(big.pk)] == "150"
    (first,) = [row for row in top_organizations_by_volume(since=now - timedelta(hours=1)) if row.name == "Big Scraper"]
    assert (first.inputs, first.calls) == (150, 2)


def test_confidence_histogram_of_the_last_24_hours_in_ten_bins(staff_client):
    organization = OrganizationFactory()
    log_call(organization, batch_size=4, confidences=[0.0, 0.05, 0.55, 1.0])
    log_call(organization, batch_size=2, confidences=[0.99, 0.1])
    log_call(organization, batch_size=1, confidences=[0.3], created_at=timezone.now() - timedelta(hours=25))
    log_call(organization, status=400, endpoint="predict", batch_size=0, confidences=[])

    page = staff_client.get("/console/").content.decode()

    drawn = bars(panel(page, "confidence-histogram"), "confidence-chart")
    assert list(drawn) == [f"{i / 10:.2f}-{(i + 1) / 10:.2f}" for i in range(10)]
    assert list(drawn.values()) == ["2", "1", "0", "0", "0", "1", "0", "0", "0", "2"]
    since = timezone.now() - timedelta(hours=24)
    assert confidence_histogram(since=since) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert confidence_histogram(since=since, organization_id=organization.pk + 1) == [0] * 10


def test_requests_by_country_public_private_loopback_and_unknown(staff_client):
    organization = OrganizationFactory()
    for _ in range(4):
        log_call(organization, client_ip="8.8.8.8")  # Google's resolver: allocated in the United States
    log_call(organization, client_ip="10.1.2.3")
    log_call(organization, client_ip="127.0.0.1")
    log_call(organization, client_ip="::1", status=429)
    log_call(organization, client_ip=None)
    log_call(organization, client_ip="8.8.4.4", created_at=timezone.now() - timedelta(hours=30))

    page = staff_client.get("/console/").content.decode()

    countries = panel(page, "countries")
    assert bars(countries, "countries-chart") == {"US": "4", PRIVATE_NETWORK: "3", UNKNOWN: "1"}
    assert requests_by_country(since=timezone.now() - timedelta(hours=24)) == [
        ("US", 4), (PRIVATE_NETWORK, 3), (UNKNOWN, 1)
    ]  # fmt: skip


def test_country_lookup_is_offline_and_labels_private_and_unknown_addresses():
    assert country_of("8.8.8.8") == "US"
    assert country_of("2001:4860:4860::8888") == "US"
    assert country_of("::ffff:8.8.8.8") == "US"
    assert countries_of(["192.168.0.1", "127.0.0.1", "::1", "fe80::1", "100.64.0.1"]) == [PRIVATE_NETWORK] * 5
    unspecified = "0.0.0.0"  # noqa: S104 (an address to label, not one to bind)
    assert countries_of([None, "", "not an ip", unspecified, "240.0.0.1"]) == [UNKNOWN] * 5


def test_throttling_events_per_day_over_14_days(staff_client):
    organization = OrganizationFactory()
    now = timezone.now()
    log_call(organization, status=429, limit_window="minute")
    log_call(organization, status=429, limit_window="day")
    log_call(organization, status=429, limit_window="hour", created_at=now - timedelta(days=3))
    log_call(organization, status=429, limit_window="hour", created_at=now - timedelta(days=14))  # out of range
    log_call(organization, status=200)

    drawn = bars(staff_client.get("/console/").content.decode(), "throttle-chart")

    assert len(drawn) == 14
    today = now.date()
    assert list(drawn) == [(today - timedelta(days=13 - i)).isoformat() for i in range(14)]
    assert drawn[today.isoformat()] == "2"
    assert drawn[(today - timedelta(days=3)).isoformat()] == "1"
    assert sum(int(v) for v in drawn.values()) == 3


def test_signups_and_rings_per_day(staff_client):
    now = timezone.now()
    for days_ago in (0, 0, 2):
        SignupRecordFactory(user=member(), created_at=now - timedelta(days=days_ago))
    SignupRecordFactory(user=member(), created_at=now - timedelta(days=20))
    Ring.objects.create(score=70, created_at=now - timedelta(days=1))

    page = staff_client.get("/console/").content.decode()

    signups = bars(page, "signups-chart")
    assert signups[now.date().isoformat()] == "2"
    assert signups[(now.date() - timedelta(days=2)).isoformat()] == "1"
    assert sum(int(v) for v in signups.values()) == 3
    rings = bars(page, "rings-chart")
    assert rings[(now.date() - timedelta(days=1)).isoformat()] == "1"
    assert sum(int(v) for v in rings.values()) == 1


def test_frozen_keys_count_and_organizations(staff_client):
    frozen_org = OrganizationFactory(name="Frozen Ltd")
    for name in ("a", "b"):
        raw_key_for(frozen_org, name=name)
    raw_key_for(OrganizationFactory(name="Fine Ltd"))
    ApiKey.objects.filter(organization=frozen_org).update(state=KeyState.FROZEN)

    frozen = panel(staff_client.get("/console/").content.decode(), "frozen-keys")

    assert "<strong data-frozen-total>2</strong> keys frozen, in 1 organization." in frozen
    assert f'href="/console/organizations/{frozen_org.pk}/">Frozen Ltd</a>: 2 keys' in frozen
    assert "Fine Ltd" not in frozen


def test_the_overview_links_to_the_other_console_pages_and_the_admin(staff_client):
    page = staff_client.get("/console/").content.decode()
    for href in ("/console/revenue/", "/console/reviews/", "/console/audit/", "/admin/"):
        assert f'href="{href}"' in page


def test_an_empty_platform_renders_every_panel(staff_client):
    UserFactory()  # nothing logged, nothing frozen
    page = staff_client.get("/console/").content.decode()
    assert "No inputs served in the last hour." in page
    assert "No API calls in the last 24 hours." in page
    assert "<strong data-frozen-total>0</strong> keys frozen." in page
