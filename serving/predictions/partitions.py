"""The query log's monthly partitions: created ahead, listed, and dropped whole once older than the retention.

The table is range-partitioned by calendar month (UTC) on created_at, plus a DEFAULT partition (migration 0005).
- Ahead: `querylog_partitions_ensure` keeps the current month and the next QUERY_LOG_PARTITIONS_AHEAD months
  partitioned (beat runs it hourly; a missed run has months of slack). A record whose month has no partition (a
  skewed client clock, a replay of old records, beat down for months) lands in the DEFAULT partition instead of
  failing the flush; the next run gives that month a partition and moves the records into it.
- Retention: `querylog_partitions_drop_expired` drops the partitions that lie wholly before the retention cutoff
  (QUERY_LOG_RETENTION_MONTHS whole months before the current one): a DROP TABLE is instant, leaves no dead rows
  to vacuum and no bloat, where a DELETE of a month of rows would write every one of them again to the WAL.

Both serialize on one PostgreSQL advisory lock (two beats, a manual run) and wait at most LOCK_TIMEOUT for the
table locks they need, so a long reader delays them to their next run instead of stalling the flush queued behind
their lock request.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction

from serving.predictions.models import QueryLog

logger = logging.getLogger(__name__)

TABLE = QueryLog._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
# First key of the two-int advisory lock that serializes partition maintenance ("QLPT").
_LOCK_CLASS = 0x514C5054
_LOCK_KEY = 1
# How long maintenance waits for a table lock before giving up until its next run. ATTACH takes SHARE UPDATE
# EXCLUSIVE on the table (the flush's inserts go on) but ACCESS EXCLUSIVE on the default partition; DROP takes
# ACCESS EXCLUSIVE on the table, which every query queued behind it would wait for.
LOCK_TIMEOUT = "5s"

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One partition: its table name and its [start, end) range; the DEFAULT partition has neither bound."""

    name: str
    start: datetime | None
    end: datetime | None

    @property
    def is_default(self) -> bool:
        return self.start is None


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the calendar month containing `moment`."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(start: datetime, months: int) -> datetime:
    """The month start `months` calendar months after (before, if negative) the month start `start`."""
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def partition_name(start: datetime) -> str:
    return f"{TABLE}_p{start:%Y_%m}"


def retention_cutoff(*, now: datetime) -> datetime:
    """Partitions ending at or before this instant hold only records older than the retention: the start of the
    month QUERY_LOG_RETENTION_MONTHS months before the current one."""
    return add_months(month_start(now), -settings.QUERY_LOG_RETENTION_MONTHS)


def querylog_partitions() -> list[Partition]:
    """The query log's partitions, oldest first, the DEFAULT partition last."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid) FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE pg_inherits.inhparent = %s::regclass",
            [TABLE],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        found = _BOUND.search(bound)
        if found is None:  # "DEFAULT"
            partitions.append(Partition(name=name, start=None, end=None))
        else:
            start, end = (datetime.fromisoformat(value).astimezone(UTC) for value in found.groups())
            partitions.append(Partition(name=name, start=start, end=end))
    return sorted(partitions, key=lambda p: (p.is_default, p.start or datetime.min.replace(tzinfo=UTC)))


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, _LOCK_KEY])
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def _months_in_default(cursor) -> list[datetime]:
    # Table names are constants of this module, never input.
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {DEFAULT_PARTITION}"  # noqa: S608  # nosec B608
    )
    return [month.replace(tzinfo=UTC) for (month,) in cursor.fetchall()]


def _create_month(cursor, start: datetime) -> None:
    """Create the month's partition, moving its records out of the DEFAULT partition, in the caller's transaction.

    Built as a plain table and attached, rather than CREATE TABLE ... PARTITION OF: attaching takes only SHARE
    UPDATE EXCLUSIVE on the partitioned table, so the flush keeps inserting meanwhile; and the default partition
    must hold no record of the month when the new partition appears, which moving them first ensures."""
    end = add_months(start, 1)
    name = partition_name(start)
    # ATTACH locks the default partition so anyway; taken before the move, no flush can put a record of the month
    # there between the move and the attach (which would then fail). Only a flush with such a record waits.
    cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= %s AND created_at < %s RETURNING *) "  # noqa: S608  # nosec B608
        f"INSERT INTO {name} SELECT * FROM moved",
        [start, end],
    )
    moved = cursor.rowcount
    # The range as a CHECK first lets ATTACH skip scanning the new table to prove it.
    cursor.execute(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (created_at >= %s AND created_at < %s)", [start, end]
    )
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])
    cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
    if moved:
        logger.warning("query log: %d record(s) of %s moved out of the default partition", moved, f"{start:%Y-%m}")


def querylog_partitions_ensure(*, now: datetime, ahead: int | None = None) -> list[str]:
    """Make sure the months from the current one to `ahead` months later (QUERY_LOG_PARTITIONS_AHEAD by default)
    have their partition, and every month that has records in the DEFAULT partition too (unless it is older than
    the retention: those records go with the next `querylog_partitions_drop_expired`). Returns the names of the
    partitions created, oldest first; a second run creates nothing. Raises OperationalError when a table lock is not
    granted within LOCK_TIMEOUT (nothing changed; the next run tries again)."""
    ahead = settings.QUERY_LOG_PARTITIONS_AHEAD if ahead is None else ahead
    current = month_start(now)
    cutoff = retention_cutoff(now=now)
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        existing = {p.start for p in querylog_partitions()}
        if None not in existing:
            cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
        wanted = {add_months(current, n) for n in range(ahead + 1)}
        wanted.update(month for month in _months_in_default(cursor) if month >= cutoff)
        for start in sorted(wanted - existing):
            _create_month(cursor, start)
            created.append(partition_name(start))
    return created


def querylog_partitions_drop_expired(*, now: datetime) -> list[str]:
    """Drop every partition that ends at or before the retention cutoff (`retention_cutoff`), with its records, and
    delete the DEFAULT partition's records older than the cutoff. A partition that reaches past the cutoff is kept
    whole: no record younger than the retention is ever dropped. Returns the names dropped; a second run drops
    nothing. Raises OperationalError when a table lock is not granted within LOCK_TIMEOUT (nothing changed)."""
    cutoff = retention_cutoff(now=now)
    dropped = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        for partition in querylog_partitions():
            if partition.is_default:
                cursor.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < %s", [cutoff])  # noqa: S608  # nosec B608
            elif partition.end <= cutoff:
                cursor.execute(f"DROP TABLE {partition.name}")
                dropped.append(partition.name)
    return dropped
