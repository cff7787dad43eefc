"""Reads of the query log."""

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.db.models import Count, Sum

from serving.input_schema import InputSchema
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


def organization_logged_inputs(*, organization_id: int, model_slug: str, schema: InputSchema, limit: int) -> np.ndarray:
    """The canonical inputs (n, d) the organization's keys were answered for `model_slug`, its latest `limit` of
    them (the query log keeps them until the retention job prunes them): what a copy made from our answers to it
    learned from."""
    rows = (
        QueryLog.objects.filter(
            organization_id=organization_id, model_slug=model_slug, endpoint="predict", status=200,
            inputs__isnull=False,
        )
        .order_by("-created_at", "-pk")
        .values_list("inputs", flat=True)
    )  # fmt: skip
    batches, total = [], 0
    for raw in rows.iterator(chunk_size=500):
        batch = schema.decode_rows(bytes(raw))
        batches.append(batch)
        total += batch.shape[0]
        if total >= limit:
            break
    if not batches:
        return np.zeros((0, schema.n_features), dtype=schema.code_dtype)
    return np.concatenate(batches)[:limit]
