"""Writes of the query log beyond the flush: retention."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from serving.predictions.models import QueryLog


def querylog_prune_raw_inputs(*, batch_size: int = 5000) -> int:
    """Drop the raw inputs of records older than the retention period (hashes, labels and counts stay, so usage
    and ownership evidence survive). Returns how many rows were pruned; safe to repeat."""
    cutoff = timezone.now() - timedelta(days=settings.QUERY_LOG_RAW_INPUT_RETENTION_DAYS)
    pruned = 0
    while True:
        ids = list(
            QueryLog.objects.filter(created_at__lt=cutoff, inputs__isnull=False).values_list("id", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return pruned
        # The time bound lets PostgreSQL visit only the partitions before the cutoff, not every partition's key.
        pruned += QueryLog.objects.filter(id__in=ids, created_at__lt=cutoff).update(inputs=None)
