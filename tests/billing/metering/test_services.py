import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apikeys.models import ApiKey
from billing.metering.models import UsageDay
from billing.metering.services import usage_aggregate_day, usage_aggregate_recent
from serving.predictions.models import QueryLog
from serving.predictions.querylog import QueryRecord, querylog_append, querylog_flush
from tests.billing.metering.helpers import log
from tests.factories import OrganizationFactory, raw_key_for

DAY = date(2026, 11, 10)
NOON = datetime(2026, 11, 10, 12, tzinfo=UTC)


def rows(**filters) -> list[tuple]:
    return list(
        UsageDay.objects.filter(**filters)
        .order_by("organization_id", "day", "tier_code")
        .values_list("organization_id", "day", "tier_code", "requests", "units")
    )


def test_only_served_predict_calls_of_the_day_are_counted_exactly(organization):
    for batch_size in (1, 2, 5):
        log(organization, at=NOON, batch_size=batch_size)
    log(organization, at=NOON, batch_size=3, status=429)
    log(organization, at=NOON, batch_size=4, status=400)
    log(organization, at=NOON, batch_size=0, endpoint="models")
    log(organization, at=NOON, batch_size=0, endpoint="usage")
    # The edges of the UTC day: the last microsecond before it and the first instant after it are not its usage.
    log(organization, at=datetime(2026, 11, 9, 23, 59, 59, 999999, tzinfo=UTC), batch_size=7)
    log(organization, at=datetime(2026, 11, 11, tzinfo=UTC), batch_size=11)
    log(organization, at=datetime(2026, 11, 10, tzinfo=UTC), batch_size=13)  # the first instant is in

    assert usage_aggregate_day(day=DAY) == 1

    assert rows() == [(organization.pk, DAY, "free", 4, 21)]


def test_rerunning_a_day_gives_the_same_rows_and_never_double_counts(organization):
    log(organization, at=NOON, batch_size=2)
    log(organization, at=NOON, batch_size=3)

    assert usage_aggregate_day(day=DAY) == 1
    first = list(UsageDay.objects.values_list("pk", "organization_id", "day", "tier_code", "requests", "units"))
    assert usage_aggregate_day(day=DAY) == 1
    assert usage_aggregate_day(day=DAY) == 1

    assert list(UsageDay.objects.values_list("pk", "organization_id", "day", "tier_code", "requests", "units")) == first
    assert rows() == [(organization.pk, DAY, "free", 2, 5)]


def test_late_records_are_counted_by_the_next_run(organization):
    log(organization, at=NOON, batch_size=2)
    usage_aggregate_day(day=DAY)
    assert rows() == [(organization.pk, DAY, "free", 1, 2)]

    # Flushed after the first aggregation, but stamped with the time the call was served.
    log(organization, at=NOON - timedelta(hours=3), batch_size=5)
    usage_aggregate_day(day=DAY)

    assert rows() == [(organization.pk, DAY, "free", 2, 7)]


def test_organizations_are_counted_separately(organization):
    other = OrganizationFactory()
    log(organization, at=NOON, batch_size=2)
    log(other, at=NOON, batch_size=9)
    log(other, at=NOON, batch_size=1)

    assert usage_aggregate_day(day=DAY) == 2

    assert rows(organization=organization) == [(organization.pk, DAY, "free", 1, 2)]
    assert rows(organization=other) == [(other.pk, DAY, "free", 2, 10)]


def test_a_tier_change_splits_the_day_by_tier(organization):
    log(organization, at=NOON - timedelta(hours=1), batch_size=2, tier_code="free")
    log(organization, at=NOON + timedelta(hours=1), batch_size=4, tier_code="pro")
    log(organization, at=NOON + timedelta(hours=2), batch_size=6, tier_code="pro")

    assert usage_aggregate_day(day=DAY) == 2

    assert rows() == [(organization.pk, DAY, "free", 1, 2), (organization.pk, DAY, "pro", 2, 10)]


def test_rows_without_usage_any_more_are_removed_and_only_that_day_is_touched(organization):
    log(organization, at=NOON, batch_size=2, tier_code="free")
    corrected = log(organization, at=NOON, batch_size=4, tier_code="pro")
    log(organization, at=NOON + timedelta(days=1), batch_size=8)
    usage_aggregate_day(day=DAY)
    usage_aggregate_day(day=DAY + timedelta(days=1))

    QueryLog.objects.filter(pk=corrected.pk).delete()  # a manual correction of the log
    assert usage_aggregate_day(day=DAY) == 1

    assert rows() == [(organization.pk, DAY, "free", 1, 2), (organization.pk, DAY + timedelta(days=1), "free", 1, 8)]


def test_a_day_without_usage_has_no_rows(organization):
    log(organization, at=NOON, status=429)

    assert usage_aggregate_day(day=DAY) == 0

    assert rows() == []


def test_recent_aggregation_covers_today_and_yesterday_only(organization):
    now = datetime(2026, 11, 12, 0, 0, 30, tzinfo=UTC)  # just after midnight: yesterday may still get late flushes
    log(organization, at=now - timedelta(seconds=10), batch_size=1)  # today
    log(organization, at=now - timedelta(hours=12), batch_size=2)  # yesterday
    log(organization, at=now - timedelta(days=1, hours=1), batch_size=4)  # the day before: not recomputed

    assert usage_aggregate_recent(now=now) == 2

    assert rows() == [
        (organization.pk, date(2026, 11, 11), "free", 1, 2),
        (organization.pk, date(2026, 11, 12), "free", 1, 1),
    ]


def test_records_flushed_through_the_real_query_log_path_are_metered(organization):
    raw_key_for(organization)
    api_key = ApiKey.objects.get(organization=organization)
    two_inputs = bytes(range(64)) + bytes([16] * 64)
    common = {
        "organization_id": organization.pk,
        "api_key_id": api_key.pk,
        "tier_code": "free",
        "endpoint": "predict",
        "latency_us": 900,
        "client_ip": "198.51.100.4",
        "user_agent": "curl/8",
        "labels": ["3", "1"],
        "clean_labels": ["3", "1"],
        "confidences": [0.9, 0.5],
        "watermarked": [False, False],
    }
    querylog_append(QueryRecord(**common, status=200, inputs=two_inputs))
    querylog_append(QueryRecord(**common, status=200, inputs=two_inputs))
    querylog_append(
        QueryRecord(
            **{**common, "labels": [], "clean_labels": [], "confidences": [], "watermarked": []}, status=429, inputs=b""
        )
    )
    assert querylog_flush() == 3

    usage_aggregate_recent(now=timezone.now())

    assert rows() == [(organization.pk, timezone.now().astimezone(UTC).date(), "free", 2, 4)]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_of_a_day_give_the_right_rows_and_no_integrity_error():
    first, second = OrganizationFactory(), OrganizationFactory()
    for _ in range(3):
        log(first, at=NOON, batch_size=2)
    log(second, at=NOON, batch_size=5, tier_code="pro")
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(usage_aggregate_day(day=DAY))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert results == [2, 2]
    assert rows() == [(first.pk, DAY, "free", 3, 6), (second.pk, DAY, "pro", 1, 5)]
