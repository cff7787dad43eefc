"""Writes of usage metering: recompute usage rows from the durable query log."""

from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from billing.metering.models import UsageDay
from serving.predictions.models import QueryLog

# First key of the two-int PostgreSQL advisory lock that serializes the aggregations of one day ("METE").
_AGGREGATE_LOCK_CLASS = 0x4D455445


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


@transaction.atomic
def usage_aggregate_day(*, day: date) -> int:
    """Recompute every organization's `UsageDay` rows of the UTC `day` from the query log. Returns how many
    (organization, tier) rows the day has now.

    Contract:
    - One aggregate query over the day's billable records (endpoint "predict", status 200), grouped by
      organization and tier; the result is upserted (INSERT ... ON CONFLICT (organization, day, tier_code)
      DO UPDATE), so the rows are *set* to what the log says, never incremented: re-running a day is a no-op,
      late records are picked up by the next run, and a worker killed mid-run loses nothing.
    - Rows of the day whose (organization, tier) no longer has billable records are deleted, so the day's rows
      are exactly a function of the log (the log is append-only in practice, so this only fires after a manual
      correction of the log). Only the given day is touched: days whose raw records are gone stay as they are.
    - Runs for the same day are serialized by a transaction-scoped advisory lock taken *before* the aggregate
      query: under READ COMMITTED the second run then sees everything the first one saw, so an older snapshot can
      never overwrite a newer count. Different days run in parallel.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_AGGREGATE_LOCK_CLASS, day.toordinal()])

    start, end = _day_bounds(day)
    totals = (
        QueryLog.objects.filter(created_at__gte=start, created_at__lt=end, endpoint="predict", status=200)
        .values("organization_id", "tier_code")
        .annotate(requests=Count("id"), units=Sum("batch_size"))
        .order_by()
    )
    now = timezone.now()
    rows = [
        UsageDay(
            organization_id=total["organization_id"],
            day=day,
            tier_code=total["tier_code"],
            requests=total["requests"],
            units=total["units"] or 0,
            updated_at=now,
        )
        for total in totals
    ]
    if rows:
        UsageDay.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["organization", "day", "tier_code"],
            update_fields=["requests", "units", "updated_at"],
        )
    current = {(row.organization_id, row.tier_code) for row in rows}
    stale = [
        pk
        for pk, organization_id, tier_code in UsageDay.objects.filter(day=day).values_list(
            "pk", "organization_id", "tier_code"
        )
        if (organization_id, tier_code) not in current
    ]
    if stale:
        UsageDay.objects.filter(pk__in=stale).delete()
    return len(rows)


def usage_aggregate_recent(*, now: datetime, days: int = 2) -> int:
    """Recompute the last `days` UTC days up to and including the day of `now` (by default today and yesterday,
    so records flushed after midnight still land on their own day). Returns the total rows of those days.

    Each day is its own transaction (see `usage_aggregate_day`), so one lock is held at a time and a failure on
    one day keeps the days already done; the next run redoes everything anyway.
    """
    today = now.astimezone(UTC).date()
    return sum(usage_aggregate_day(day=today - timedelta(days=offset)) for offset in range(days))
