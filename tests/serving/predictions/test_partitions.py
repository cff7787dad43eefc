"""The query log is partitioned by month: records land in their month's partition, partitions are made ahead and
dropped whole past the retention, a record of a month with no partition is never lost, the flush stays idempotent,
and the migration that partitioned the table kept every row."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apikeys.models import ApiKey
from serving.predictions.models import QueryLog
from serving.predictions.partitions import (
    DEFAULT_PARTITION,
    TABLE,
    add_months,
    month_start,
    partition_name,
    querylog_partitions,
    querylog_partitions_drop_expired,
    querylog_partitions_ensure,
    retention_cutoff,
)
from serving.predictions.querylog import querylog_append, querylog_flush
from serving.predictions.tasks import drop_expired_query_log_partitions, ensure_query_log_partitions
from tests.factories import raw_key_for
from tests.serving.predictions.test_querylog import record_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_key(organization) -> ApiKey:
    raw_key_for(organization)
    return ApiKey.objects.get(organization=organization)


def _flush_at(api_key: ApiKey, *moments: datetime) -> list[str]:
    """Append a record made at each moment, flush them; returns their request ids."""
    records = [record_for(api_key, created_at=moment.timestamp()) for moment in moments]
    for record in records:
        querylog_append(record)
    querylog_flush()
    return [record.request_id for record in records]


def _partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {TABLE} WHERE request_id = %s",  # noqa: S608
            [request_id],
        )
        return cursor.fetchone()[0]


def _stored(request_ids: list[str]) -> set[str]:
    return {str(r) for r in QueryLog.objects.filter(request_id__in=request_ids).values_list("request_id", flat=True)}


def test_the_query_log_is_range_partitioned_by_created_at_from_this_month_to_three_ahead_with_a_default():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partrelid = %s::regclass",
            [TABLE],
        )
        assert cursor.fetchone() == ("r", "created_at")
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY conname",
            [TABLE],
        )
        keys = [definition for (definition,) in cursor.fetchall() if "KEY" in definition or "UNIQUE" in definition]
    assert keys == ["PRIMARY KEY (id, created_at)", "UNIQUE (request_id, created_at)"]

    this_month = month_start(timezone.now())
    partitions = querylog_partitions()
    monthly = [(p.name, p.start, p.end) for p in partitions if not p.is_default]
    expected = [(partition_name(add_months(this_month, n)), add_months(this_month, n), add_months(this_month, n + 1))
                for n in range(4)]  # fmt: skip
    assert monthly[-4:] == expected
    assert partitions[-1].name == DEFAULT_PARTITION and partitions[-1].is_default


def test_a_flushed_record_lands_in_its_months_partition(api_key):
    now = timezone.now()
    next_month = add_months(month_start(now), 1) + timedelta(days=3)

    this, later = _flush_at(api_key, now, next_month)

    assert _partition_of(this) == partition_name(month_start(now))
    assert _partition_of(later) == partition_name(month_start(next_month))
    assert QueryLog.objects.get(request_id=this).created_at.timestamp() == pytest.approx(now.timestamp())


def test_making_partitions_ahead_creates_only_the_missing_months_and_a_second_run_creates_none():
    now = timezone.now()
    current = month_start(now)

    created = querylog_partitions_ensure(now=now, ahead=6)

    assert created == [partition_name(add_months(current, n)) for n in (4, 5, 6)]
    assert querylog_partitions_ensure(now=now, ahead=6) == []
    assert ensure_query_log_partitions.delay().get() == []  # the beat task: the default horizon is already there
    names = [p.name for p in querylog_partitions()]
    assert len(names) == len(set(names))


def test_dropping_removes_only_whole_partitions_older_than_the_retention_and_keeps_every_newer_row(api_key, settings):
    settings.QUERY_LOG_RETENTION_MONTHS = 2
    now = timezone.now()
    current = month_start(now)
    querylog_partitions_ensure(now=add_months(current, -4), ahead=4)  # four past months too
    cutoff = retention_cutoff(now=now)
    assert cutoff == add_months(current, -2)
    too_old, last_expired_moment, oldest_kept, previous, this = _flush_at(
        api_key,
        add_months(current, -4) + timedelta(days=10),
        cutoff - timedelta(microseconds=1),  # the last instant of the newest expired month
        cutoff,  # the first instant of the oldest month kept
        add_months(current, -1) + timedelta(days=27),
        now,
    )

    dropped = querylog_partitions_drop_expired(now=now)

    assert dropped == [partition_name(add_months(current, -4)), partition_name(add_months(current, -3))]
    assert _stored([too_old, last_expired_moment, oldest_kept, previous, this]) == {oldest_kept, previous, this}
    remaining = {p.start for p in querylog_partitions()}
    assert add_months(current, -3) not in remaining and {cutoff, add_months(current, -1), current} <= remaining
    assert querylog_partitions_drop_expired(now=now) == []  # a second run drops nothing
    assert drop_expired_query_log_partitions.delay().get() == []  # nor does the beat task


def test_a_record_of_a_month_without_a_partition_is_kept_in_the_default_partition_until_its_month_gets_one(
    api_key, settings
):
    settings.QUERY_LOG_RETENTION_MONTHS = 3
    now = timezone.now()
    current = month_start(now)
    far_future = add_months(current, 20) + timedelta(hours=5)  # a client clock years off: past the horizon
    past = add_months(current, -2) + timedelta(days=1)  # within the retention, before the first partition
    expired = add_months(current, -5)  # older than the retention

    future_id, past_id, expired_id = _flush_at(api_key, far_future, past, expired)

    # The flush failed on none of them: they wait in the default partition.
    assert {_partition_of(i) for i in (future_id, past_id, expired_id)} == {DEFAULT_PARTITION}

    created = querylog_partitions_ensure(now=now)

    assert created == [partition_name(add_months(current, -2)), partition_name(add_months(current, 20))]
    assert _partition_of(future_id) == partition_name(add_months(current, 20))
    assert _partition_of(past_id) == partition_name(add_months(current, -2))
    assert _partition_of(expired_id) == DEFAULT_PARTITION  # not given a partition only to be dropped
    assert QueryLog.objects.get(request_id=future_id).batch_size == 2  # moved whole

    assert querylog_partitions_drop_expired(now=now) == []  # no partition is that old...
    assert _stored([future_id, past_id, expired_id]) == {future_id, past_id}  # ...the default's old records go


def test_a_record_flushed_again_is_stored_once_whichever_partition_holds_it(api_key):
    now = timezone.now()
    months = [now, add_months(month_start(now), 2), add_months(month_start(now), 30)]  # the last: default partition
    records = [record_for(api_key, created_at=moment.timestamp()) for moment in months]
    for record in records * 2:  # each delivered twice (a killed flusher's entries claimed again)
        querylog_append(record)
    querylog_flush()
    ids = [record.request_id for record in records]
    assert QueryLog.objects.filter(request_id__in=ids).count() == 3

    querylog_partitions_ensure(now=now, ahead=30)  # the third moves out of the default partition...
    querylog_append(records[2])  # ...and is delivered once more
    querylog_flush()

    assert QueryLog.objects.filter(request_id__in=ids).count() == 3
    assert _partition_of(ids[2]) == partition_name(month_start(months[2]))


def _insert_plain_rows(cursor, moments: list[datetime]) -> list[tuple[int, str, datetime]]:
    rows = []
    for moment in moments:
        request_id = str(uuid.uuid4())
        cursor.execute(
            f"INSERT INTO {TABLE} (request_id, created_at, organization_id, api_key_id, tier_code, endpoint, "  # noqa: S608
            "model_slug, model_version, variant, user_agent, latency_us, status, error_code, batch_size, inputs, "
            "input_row_bytes, labels, clean_labels, confidences, watermarked, limit_window) VALUES (%s, %s, 1, 1, "
            "'free', 'predict', 'digits', 'v1', 'full', 'ua', 900, 200, '', 1, %s, 4, '{3}', '{3}', '{0.5}', '{f}', "
            "'') RETURNING id",
            [request_id, moment, b"\x01\x02\x03\x04"],
        )
        rows.append((cursor.fetchone()[0], request_id, moment))
    return rows


def test_partitioning_an_existing_log_keeps_every_row_and_unpartitioning_it_too():
    now = timezone.now()
    moments = [datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), now - timedelta(days=70), now]
    executor = MigrationExecutor(connection)
    before = [("predictions", "0004_querylog_input_row_bytes")]
    after = [("predictions", "0005_querylog_partitioned_by_month")]
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE])
            assert cursor.fetchone() == ("r",)  # the plain table of 0004
            rows = _insert_plain_rows(cursor, moments)
    finally:
        executor.loader.build_graph()
        executor.migrate(after)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, request_id::text, created_at, inputs FROM {TABLE} ORDER BY id")  # noqa: S608
        copied = cursor.fetchall()
    assert [(i, r, c) for i, r, c, _ in copied] == rows
    assert {bytes(raw) for *_, raw in copied} == {b"\x01\x02\x03\x04"}
    assert _partition_of(rows[0][1]) == f"{TABLE}_p2024_02"  # every month with rows got a partition
    assert querylog_partitions()[0].start == datetime(2024, 2, 1, tzinfo=UTC)
    assert _partition_of(rows[2][1]) == partition_name(month_start(now))
    new = QueryLog.objects.create(
        request_id=uuid.uuid4(), created_at=now, organization_id=1, tier_code="free", endpoint="models",
        latency_us=1, status=200,
    )  # fmt: skip
    assert new.pk > rows[-1][0]  # the id sequence goes on after the copied rows

    executor.loader.build_graph()
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE])
            assert cursor.fetchone() == ("r",)
            cursor.execute(f"SELECT count(*) FROM {TABLE}")  # noqa: S608
            assert cursor.fetchone() == (4,)  # back to one plain table, nothing lost either way
    finally:
        executor.loader.build_graph()
        executor.migrate(after)


def _partitions_read(queries: list[dict]) -> set[str]:
    """The partitions the plans of these queries' SELECTs of the query log read (EXPLAIN: pruned at planning)."""
    read = set()
    with connection.cursor() as cursor:
        for query in queries:
            if TABLE not in query["sql"] or not query["sql"].lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (FORMAT JSON) " + query["sql"])
            stack = [cursor.fetchone()[0][0]["Plan"]]
            while stack:
                node = stack.pop()
                if node.get("Relation Name", "").startswith(TABLE):
                    read.add(node["Relation Name"])
                stack.extend(node.get("Plans", []))
    return read


def test_the_risk_job_and_metering_read_only_the_partitions_of_their_window(api_key, registered_digits):
    from django.test.utils import CaptureQueriesContext

    from abuse.risk import extraction_risk_assess_all
    from billing.metering.services import usage_aggregate_day
    from serving.predictions.selectors import usage_for_organization
    from serving.quotas.limiter import monthly_usage_from_database

    now = timezone.now()
    current = month_start(now)
    querylog_partitions_ensure(now=add_months(current, -5), ahead=5)  # older months the reads must skip
    natural = bytes([0, 3, 12, 16] * 16)  # a 64-value digit on the model's 0..16 grid
    for moment in (now - timedelta(minutes=5), now - timedelta(days=40), now - timedelta(days=100)):
        querylog_append(record_for(api_key, created_at=moment.timestamp(), inputs=natural * 2))
    querylog_flush()
    window = {partition_name(month_start(now - timedelta(days=1))), partition_name(current)}

    with CaptureQueriesContext(connection) as risk:
        assert len(extraction_risk_assess_all(now=now)) == 1
    with CaptureQueriesContext(connection) as metering:
        usage_aggregate_day(day=now.date())
        assert monthly_usage_from_database(organization_id=api_key.organization_id, period=f"{now:%Y%m}") == 2
        assert usage_for_organization(organization_id=api_key.organization_id, now=now).predictions == 2

    read_by_risk = _partitions_read(risk.captured_queries)
    assert partition_name(current) in read_by_risk and read_by_risk <= window  # never the default partition
    assert _partitions_read(metering.captured_queries) == {partition_name(current)}
