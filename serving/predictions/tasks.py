"""Celery tasks of the query log. All are idempotent, so a redelivery after a killed worker is harmless."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from serving.predictions.partitions import querylog_partitions_drop_expired, querylog_partitions_ensure
from serving.predictions.querylog import querylog_flush
from serving.predictions.services import querylog_prune_raw_inputs


@shared_task(
    name="predictions.flush_query_log",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=120,
    soft_time_limit=100,
    ignore_result=True,
)
def flush_query_log() -> int:
    """Move query-log records from the Redis stream to PostgreSQL (runs every 2 s from beat)."""
    return querylog_flush(batch_size=settings.QUERY_LOG_FLUSH_BATCH)


@shared_task(
    name="predictions.prune_query_log_inputs",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=1800,
    soft_time_limit=1700,
    ignore_result=True,
)
def prune_query_log_inputs() -> int:
    """Drop raw inputs older than QUERY_LOG_RAW_INPUT_RETENTION_DAYS (daily)."""
    return querylog_prune_raw_inputs()


@shared_task(
    name="predictions.ensure_query_log_partitions",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=600,
    soft_time_limit=540,
    ignore_result=True,
)
def ensure_query_log_partitions() -> list[str]:
    """Partition the months from the current one to QUERY_LOG_PARTITIONS_AHEAD ahead, and every month whose records
    wait in the default partition (hourly); returns the partitions created."""
    return querylog_partitions_ensure(now=timezone.now())


@shared_task(
    name="predictions.drop_expired_query_log_partitions",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=600,
    soft_time_limit=540,
    ignore_result=True,
)
def drop_expired_query_log_partitions() -> list[str]:
    """Drop the partitions older than QUERY_LOG_RETENTION_MONTHS whole months (daily); returns their names."""
    return querylog_partitions_drop_expired(now=timezone.now())
