"""Celery tasks of accounts: thin wrappers that call services with ids."""

from celery import shared_task

from accounts.services import email_verification_send, invitation_email_send


@shared_task(
    name="accounts.send_verification_email",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=60,
    soft_time_limit=45,
)
def send_verification_email(user_id: int) -> bool:
    """Email the verification link (a no-op once the user is verified or gone)."""
    return email_verification_send(user_id=user_id)


@shared_task(
    name="accounts.send_invitation_email",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=60,
    soft_time_limit=45,
)
def send_invitation_email(invitation_id: int, token: str) -> bool:
    """Email the invitation link (a no-op once the invitation is accepted, revoked, expired or gone). The raw
    token is an argument because only its hash is stored."""
    return invitation_email_send(invitation_id=invitation_id, token=token)
