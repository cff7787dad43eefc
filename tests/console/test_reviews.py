"""The review queue: riskiest first (score, then trend), filtered by level, paginated, with keys, ring and appeals."""

import html
import re

import pytest
from django.utils import timezone

from abuse.models import Appeal, Ring, RiskLevel, RiskState
from apikeys.models import ApiKey, KeyState
from tests.factories import OrganizationFactory, raw_key_for

pytestmark = pytest.mark.django_db


def queue_rows(page: str) -> list[tuple[int, int, str]]:
    """(organization id, score, trend cell text) of each row, in order."""
    rows = re.findall(r'<tr data-organization="(\d+)">(.*?)</tr>', page, re.S)
    result = []
    for organization_id, cells in rows:
        score = re.search(r"data-score>(\d+)<", cells).group(1)
        trend = html.unescape(re.sub(r"<[^>]+>", "", re.search(r"data-trend>(.*?)</td>", cells).group(1))).strip()
        result.append((int(organization_id), int(score), trend))
    return result


def risky(name: str, *, score: int, previous: int, level: str = RiskLevel.NORMAL, **fields):
    organization = OrganizationFactory(name=name)
    RiskState.objects.create(organization=organization, score=score, previous_score=previous, level=level, **fields)
    return organization


def test_the_queue_sorts_by_score_then_trend_and_shows_the_evidence(staff_client):
    ring = Ring.objects.create(score=80)
    falling = risky("Falling", score=90, previous=95, level=RiskLevel.FREEZE)
    rising = risky(
        "Rising", score=90, previous=40, level=RiskLevel.FREEZE, ring=ring,
        top_reasons=["Queries sit on the decision boundary", "Volume 40x the tier's normal"],
    )  # fmt: skip
    steady = risky("Steady", score=55, previous=55, level=RiskLevel.THROTTLE)
    unassessed = OrganizationFactory(name="Unassessed")
    for name in ("a", "b", "c"):
        raw_key_for(rising, name=name)
    ApiKey.objects.filter(organization=rising, name="a").update(state=KeyState.FROZEN)
    ApiKey.objects.filter(organization=rising, name="b").update(state=KeyState.REVOKED)
    Appeal.objects.create(organization=rising, message="We are a school.")
    Appeal.objects.create(organization=falling, message="Old.", resolved_at=timezone.now())

    page = staff_client.get("/console/reviews/").content.decode()

    rows = queue_rows(page)
    assert [row[0] for row in rows][:4] == [rising.pk, falling.pk, steady.pk, unassessed.pk]
    assert rows[0][1:] == (90, "▲ +50")
    assert rows[1][1:] == (90, "▼ -5")
    assert rows[2][1:] == (55, "\N{EN DASH}")
    assert rows[3][1:] == (0, "\N{EN DASH}")
    first = page[page.index(f'<tr data-organization="{rising.pk}">') :]
    first = first[: first.index("</tr>")]
    assert 'data-keys title="active / frozen / revoked">1 / 1 / 1</td>' in first
    assert f'href="/console/rings/{ring.pk}/"' in first
    assert "data-open-appeal" in first
    assert "Queries sit on the decision boundary" in first and "Volume 40x the tier&#x27;s normal" in first
    assert f'href="/console/organizations/{rising.pk}/">Rising</a>' in first
    assert "level-freeze" in first
    second = page[page.index(f'<tr data-organization="{falling.pk}">') :]
    assert "data-open-appeal" not in second[: second.index("</tr>")]  # a resolved appeal is not open


def test_the_queue_filters_by_level(staff_client):
    frozen = risky("Frozen", score=85, previous=80, level=RiskLevel.FREEZE)
    throttled = risky("Throttled", score=60, previous=10, level=RiskLevel.THROTTLE)
    normal = risky("Normal", score=5, previous=5)
    unassessed = OrganizationFactory()

    def ids(level: str) -> list[int]:
        return [row[0] for row in queue_rows(staff_client.get(f"/console/reviews/?level={level}").content.decode())]

    assert ids("freeze") == [frozen.pk]
    assert ids("throttle") == [throttled.pk]
    assert ids("normal") == [normal.pk, unassessed.pk]
    assert ids("") == [frozen.pk, throttled.pk, normal.pk, unassessed.pk]
    # An unknown level is ignored rather than an error: the page shows everything.
    assert ids("bogus") == [frozen.pk, throttled.pk, normal.pk, unassessed.pk]


def test_the_queue_is_paginated_and_pages_keep_the_filter(staff_client):
    organizations = [risky(f"Org {i:02d}", score=100 - i, previous=0, level=RiskLevel.THROTTLE) for i in range(30)]

    first = staff_client.get("/console/reviews/?level=throttle").content.decode()
    second = staff_client.get("/console/reviews/?level=throttle&page=2").content.decode()

    assert [row[0] for row in queue_rows(first)] == [org.pk for org in organizations[:25]]
    assert [row[0] for row in queue_rows(second)] == [org.pk for org in organizations[25:]]
    assert "Page 1 of 2" in first and 'href="?level=throttle&amp;page=2"' in first
    assert 'href="?level=throttle&amp;page=1"' in second
    # Past the end: the last page, not an error.
    assert queue_rows(staff_client.get("/console/reviews/?page=99").content.decode())[-1][0] == organizations[-1].pk


def test_the_queue_costs_the_same_queries_for_one_row_or_a_full_page(staff_client, django_assert_max_num_queries):
    risky("Only", score=10, previous=0)
    with django_assert_max_num_queries(8) as one:
        staff_client.get("/console/reviews/")
    for i in range(30):
        organization = risky(f"More {i}", score=i, previous=0, ring=Ring.objects.create(score=1))
        raw_key_for(organization)
        Appeal.objects.create(organization=organization, message="x")
    with django_assert_max_num_queries(len(one.captured_queries)):
        staff_client.get("/console/reviews/")
