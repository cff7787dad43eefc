"""Tasks that were given up on: the dead letters of the Celery queue, kept where staff can see and rerun them."""

from django.db import models
from django.utils import timezone


class FailureReason(models.TextChoices):
    WORKER_LOST = "worker_lost", "Its worker died on every delivery"
    FAILED = "failed", "It failed after its retries"


class FailedTask(models.Model):
    """One task message given up on: parked here instead of being redelivered for ever (a task that kills its
    worker) or dropped (a task that failed after its last retry). Resolved once rerun or dismissed."""

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255, db_index=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=16, choices=FailureReason.choices)
    attempts = models.PositiveIntegerField(help_text="Deliveries lost with their worker, or runs that failed.")
    error = models.TextField(blank=True)
    parked_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    resolved_by = models.CharField(max_length=255, blank=True)
    rerun_task_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-parked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id} ({self.get_reason_display().lower()})"
