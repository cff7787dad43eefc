"""Reads of the query log."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Sum

from serving.predictions.models import QueryLog


@dataclass(frozen=True)
class Usage:
    period_start: datetime
    period_end: datetime
    requests: int
    predictions: int


def billing_period(*, now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) containing `now`: [start, end)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def usage_for_organization(*, organization_id: int, now: datetime) -> Usage:
    """Served predict calls and inputs this period, as recorded in PostgreSQL (a few seconds behind the API)."""
    start, end = billing_period(now=now)
    totals = QueryLog.objects.filter(
        organization_id=organization_id, created_at__gte=start, created_at__lt=end, endpoint="predict", status=200
    ).aggregate(requests=Count("id"), predictions=Sum("batch_size"))
    return Usage(
        period_start=start,
        period_end=end,
        requests=totals["requests"] or 0,
        predictions=totals["predictions"] or 0,
    )
