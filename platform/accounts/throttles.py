"""Password-reset requests are limited per client IP and per account, before any lookup or email.

django-axes guards sign-in; nothing guarded the reset form, so anyone could mail-bomb a customer with reset links or
time the form to learn which addresses have accounts. Counted in one atomic Redis script (reset_limit.lua), in
fixed windows. The account is the canonical mailbox of the address typed, whether or not an account has it, so a
refusal reveals nothing about which addresses are customers.

Fails closed: while Redis is unreachable the form answers 503 and sends nothing (a reset can wait a minute; an
unlimited form cannot be taken back)."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import redis
from django.conf import settings

from accounts.emails import canonical_email
from core.redis import guarded_redis_client, redis_breaker_trip

_SCRIPT_SOURCE = (Path(__file__).parent / "reset_limit.lua").read_text()
_script = None
# One hash tag for every reset counter: the script touches two keys, which must share a Redis Cluster slot.
_TAG = "{pwreset}"
UNAVAILABLE_RETRY_SECONDS = 60


@dataclass(frozen=True)
class ResetRefusal:
    status: int  # 429 over a limit, 503 when the counters cannot be read
    retry_after: int  # seconds
    message: str


def _account_scope(email: str) -> str:
    try:
        mailbox = canonical_email(email)
    except ValueError:
        mailbox = email.strip().lower()
    return hashlib.sha256(mailbox.encode("utf-8")).hexdigest()


def reset_counter_keys(*, client_ip: str | None, email: str) -> tuple[str, str]:
    """The Redis keys of the IP's and the account's counters (the address is hashed, never stored)."""
    return f"moat:{_TAG}:ip:{client_ip or 'unknown'}", f"moat:{_TAG}:account:{_account_scope(email)}"


def password_reset_admit(*, client_ip: str | None, email: str) -> ResetRefusal | None:
    """Count one reset request against the client IP's and the account's windows. None when it may proceed; else
    why not. Side effect: both counters are incremented, admitted or not."""
    global _script
    window = settings.PASSWORD_RESET_WINDOW_SECONDS
    keys = reset_counter_keys(client_ip=client_ip, email=email)
    try:
        connection = guarded_redis_client(keys[0])
        if _script is None:
            _script = connection.register_script(_SCRIPT_SOURCE)
        ip_count, ip_ttl, account_count, account_ttl = _script(keys=list(keys), args=[window], client=connection)
    except redis.RedisError:
        redis_breaker_trip(keys[0])
        return ResetRefusal(
            status=503,
            retry_after=UNAVAILABLE_RETRY_SECONDS,
            message="Password resets are briefly unavailable. Try again in a minute.",
        )
    over = [
        ttl
        for count, ttl, limit in (
            (ip_count, ip_ttl, settings.PASSWORD_RESET_LIMIT_PER_IP),
            (account_count, account_ttl, settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT),
        )
        if count > limit
    ]
    if not over:
        return None
    retry_after = max(over)
    minutes = max(1, -(-retry_after // 60))
    return ResetRefusal(
        status=429,
        retry_after=retry_after,
        message=f"Too many password reset requests. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
    )
