"""Celery tasks of usage metering. Idempotent (usage is recomputed, never incremented), so a redelivery after a
killed worker is harmless: acks_late + reject_on_worker_lost."""

from celery import shared_task
from django.utils import timezone

from billing.metering.services import usage_aggregate_recent


@shared_task(
    name="metering.aggregate_usage",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=120,
    soft_time_limit=100,
    ignore_result=True,
)
def aggregate_usage() -> int:
    """Recompute today's and yesterday's usage rows from the query log (every 60 s from beat). Returns the rows."""
    return usage_aggregate_recent(now=timezone.now())
