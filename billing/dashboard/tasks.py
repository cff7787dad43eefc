"""Celery tasks of the billing dashboard."""

from celery import shared_task
from django.utils import timezone

from billing.dashboard.services import spend_caps_sync, usage_alerts_send


@shared_task(
    name="billing_dashboard.send_usage_alerts",
    # Idempotent: sent alerts are rows under a unique constraint, so a redelivered sweep sends nothing twice.
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=300,
    soft_time_limit=240,
    ignore_result=True,
)
def send_usage_alerts() -> int:
    """Email owners whose usage crossed 50/80/100% of the included amount this period. Returns emails sent."""
    return usage_alerts_send(now=timezone.now())


@shared_task(
    name="billing_dashboard.sync_spend_caps",
    acks_late=True,  # idempotent: it recomputes and overwrites the flags
    reject_on_worker_lost=True,
    time_limit=300,
    soft_time_limit=240,
    ignore_result=True,
)
def sync_spend_caps() -> int:
    """Mark in Redis the organizations at their spend cap this period (the API answers them 402)."""
    return spend_caps_sync(now=timezone.now())
