"""Celery tasks of the Stripe side of billing. Each is thin, takes ids, and is idempotent, so acks_late with
reject_on_worker_lost is safe: a redelivery after a killed worker changes nothing that already happened."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from billing.payments import meter_reports, services
from billing.payments.stripe_gateway import PaymentGatewayError

logger = logging.getLogger(__name__)

MAX_RETRIES = 8


def _backoff(retries: int) -> int:
    return min(60 * 2**retries, 3600)


@shared_task(
    bind=True,
    name="payments.process_stripe_event",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    time_limit=120,
    soft_time_limit=100,
    ignore_result=True,
)
def process_stripe_event(self, event_pk: int) -> str | None:
    """Claim a stored webhook event (pending/failed -> processing) and apply it once; record processed, ignored or
    failed with the error. Database errors are retried with backoff; other errors are recorded and not retried
    (staff see them in the admin)."""
    if not services.stripe_event_claim(event_pk=event_pk, claimant=self.request.id or ""):
        return None
    try:
        return services.stripe_event_process(event_pk=event_pk)
    except (DatabaseError, PaymentGatewayError) as exc:
        services.stripe_event_mark_failed(event_pk=event_pk, error=f"{exc.__class__.__name__}: {exc}")
        if isinstance(exc, PaymentGatewayError) and not exc.retryable:
            return "failed"
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    except Exception as exc:
        logger.exception("Stripe event %s failed", event_pk)
        services.stripe_event_mark_failed(event_pk=event_pk, error=f"{exc.__class__.__name__}: {exc}")
        return "failed"


@shared_task(
    bind=True,
    name="payments.create_stripe_customer",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    time_limit=60,
    soft_time_limit=50,
    ignore_result=True,
)
def create_stripe_customer(self, organization_id: int) -> str | None:
    """Create the organization's Stripe customer once (idempotency key `moat-customer-<id>`) and store its id.
    Exits cleanly if the organization is gone or already has a customer."""
    try:
        return services.billing_account_ensure_customer(organization_id=organization_id)
    except PaymentGatewayError as exc:
        if not exc.retryable:
            raise
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="payments.end_expired_grace_periods",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=300,
    soft_time_limit=270,
    ignore_result=True,
)
def end_expired_grace_periods() -> int:
    """Move organizations whose grace period after a failed payment ran out back to the free tier (beat, hourly)."""
    return services.grace_periods_end()


@shared_task(
    name="payments.report_usage_to_stripe",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=1800,
    soft_time_limit=1700,
    ignore_result=True,
)
def report_usage_to_stripe() -> dict[str, int]:
    """Report each closed day's usage to the billing meter; failed reports are retried on the next run (beat,
    hourly). Does nothing while payments are not configured."""
    if not settings.STRIPE_API_KEY:
        return {"created": 0, "sent": 0, "failed": 0}
    created = meter_reports.meter_reports_prepare()
    sent, failed = meter_reports.meter_reports_send()
    return {"created": created, "sent": sent, "failed": failed}


@shared_task(
    name="payments.requeue_stripe_events",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=120,
    soft_time_limit=100,
    ignore_result=True,
)
def requeue_stripe_events() -> int:
    """Enqueue again the webhook events left pending (a lost enqueue), failed, or claimed by a dead worker (beat,
    every 5 minutes). Processing is idempotent, so enqueuing an event twice is harmless."""
    pks = services.stripe_events_requeue()
    for pk in pks:
        process_stripe_event.delay(pk)
    return len(pks)
