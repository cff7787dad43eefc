"""Writes of quota state: the adaptive throttle factor (PostgreSQL is the truth, Redis the copy the script reads)."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from apikeys.cache import apikey_cache_refresh_for_organization
from core.errors import ApplicationError
from core.redis import redis_client
from serving.quotas.limiter import counter_keys


class InvalidThrottleFactorError(ApplicationError):
    code = "invalid_throttle_factor"


@transaction.atomic
def organization_set_throttle_factor(
    *, organization: Organization, factor: float, reason: str, actor: str, at: datetime | None = None
) -> None:
    """Scale the organization's rate limits by `factor` (0 < factor <= 1; 1 clears the throttle). In force on
    every web process as soon as the transaction commits: the quota script reads the factor from Redis. Its keys'
    snapshots are rewritten too: a throttled organization's answers carry the label only (`ApiKeyContext`). `at` is
    when the decision was taken (default now; the abuse jobs pass the moment their run judged, which a replay on a
    simulated clock sets in the past)."""
    if not 0 < factor <= 1:
        raise InvalidThrottleFactorError("The throttle factor must be above 0 and at most 1.")
    Organization.objects.filter(pk=organization.pk).update(
        throttle_factor=factor, throttle_reason=reason if factor < 1 else "", throttle_set_by=actor[:200],
        throttle_set_at=at or timezone.now(),
    )  # fmt: skip
    _, org_prefix = counter_keys(organization_id=organization.pk, key_id=0)
    if factor < 1:
        transaction.on_commit(lambda: redis_client().set(f"{org_prefix}:factor", str(factor)), robust=True)
    else:
        transaction.on_commit(lambda: redis_client().delete(f"{org_prefix}:factor"), robust=True)
    apikey_cache_refresh_for_organization(organization_id=organization.pk)


def organization_set_spend_capped(*, organization_id: int, period: str, capped: bool) -> None:
    """Mark (or clear) that an organization's invoice preview reached its spend cap in `period` (YYYYMM); billable
    API calls then get 402 `spend_cap_reached` until the flag is cleared or the period ends. Called by billing."""
    _, org_prefix = counter_keys(organization_id=organization_id, key_id=0)
    if capped:
        redis_client().set(f"{org_prefix}:capped", period, ex=40 * 86400)
    else:
        redis_client().delete(f"{org_prefix}:capped")
