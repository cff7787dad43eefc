"""Tiers for the hot path: each web process keeps every tier in memory and re-reads them every few seconds, so an
edit in the admin takes effect everywhere within `_REFRESH_SECONDS` and a request never queries PostgreSQL.

While PostgreSQL is unreachable (a restart, a failover) the process keeps serving the tiers it last read, and tries
again every `_RETRY_SECONDS` rather than on every request; only a tier it has never read is unavailable."""

import logging
import time
from dataclasses import dataclass

from core.db import DATABASE_UNAVAILABLE_ERRORS
from tiers.models import Tier

logger = logging.getLogger(__name__)

_REFRESH_SECONDS = 5.0
_RETRY_SECONDS = 1.0
_snapshot: dict[str, "TierSnapshot"] = {}
_loaded_at = float("-inf")


@dataclass(frozen=True)
class TierSnapshot:
    code: str
    name: str
    is_public: bool
    model_variant: str
    requests_per_minute: int
    requests_per_hour: int
    requests_per_day: int
    key_requests_per_minute: int
    key_requests_per_hour: int
    key_requests_per_day: int
    monthly_included_requests: int
    overage_allowed: bool
    max_batch_size: int
    output_fields: frozenset[str]
    defenses: dict


def _load() -> dict[str, TierSnapshot]:
    return {
        tier.code: TierSnapshot(
            code=tier.code,
            name=tier.name,
            is_public=tier.is_public,
            model_variant=tier.model_variant,
            requests_per_minute=tier.requests_per_minute,
            requests_per_hour=tier.requests_per_hour,
            requests_per_day=tier.requests_per_day,
            key_requests_per_minute=min(
                tier.key_requests_per_minute or tier.requests_per_minute, tier.requests_per_minute
            ),
            key_requests_per_hour=min(tier.key_requests_per_hour or tier.requests_per_hour, tier.requests_per_hour),
            key_requests_per_day=min(tier.key_requests_per_day or tier.requests_per_day, tier.requests_per_day),
            monthly_included_requests=tier.monthly_included_requests,
            overage_allowed=tier.overage_allowed,
            max_batch_size=tier.max_batch_size,
            output_fields=frozenset(tier.output_fields),
            defenses=dict(tier.defenses or {}),
        )
        for tier in Tier.objects.all()
    }


def tier_snapshot(*, code: str) -> TierSnapshot:
    """The tier as of at most a few seconds ago (or as last read, while PostgreSQL is unreachable); raises KeyError
    for an unknown code, and django.db's OperationalError when PostgreSQL is unreachable and the tier was never
    read."""
    global _snapshot, _loaded_at
    now = time.monotonic()
    if now - _loaded_at > _REFRESH_SECONDS or code not in _snapshot:
        try:
            _snapshot, _loaded_at = _load(), now
        except DATABASE_UNAVAILABLE_ERRORS:
            if code not in _snapshot:
                raise
            logger.warning("tiers could not be re-read from PostgreSQL; serving the copy read before")
            _loaded_at = now - _REFRESH_SECONDS + _RETRY_SECONDS
    return _snapshot[code]


def tier_cache_clear() -> None:
    global _loaded_at
    _loaded_at = float("-inf")
