"""Celery tasks of abuse detection: thin, named, time-limited wrappers around the jobs and the emails.

The jobs are idempotent (a second run in the same time bucket rewrites its rows, links and ring members are
upserted, every action is conditional) and serialize on a PostgreSQL advisory lock, so acks_late is safe: a job
lost with its worker runs again. Queued runs expire before the next one is due, so a slow run never piles up."""

from celery import shared_task

from abuse.rings import signup_rings_refresh
from abuse.risk import extraction_risk_assess_all
from abuse.services import enforcement_email_send


@shared_task(
    name="abuse.refresh_signup_rings",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=120,
    soft_time_limit=100,
)
def refresh_signup_rings() -> int:
    """Link organizations by their sign-up evidence and keep the rings up to date; returns the active rings."""
    return len(signup_rings_refresh())


@shared_task(
    name="abuse.assess_extraction_risk",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=120,
    soft_time_limit=100,
)
def assess_extraction_risk() -> int:
    """Score every organization and ring with new traffic; throttle or freeze above the thresholds."""
    return len(extraction_risk_assess_all())


@shared_task(
    name="abuse.send_enforcement_email",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=60,
    soft_time_limit=45,
)
def send_enforcement_email(audit_entry_id: int) -> int:
    return enforcement_email_send(audit_entry_id=audit_entry_id)
