"""API-key state for the hot path, without a PostgreSQL round trip per request.

A snapshot of each key (organization, tier, state, expiry, Terms status) lives in Redis for 30 s and in each
web process's memory for `API_KEY_CACHE_SECONDS`. Every write that changes a snapshot rewrites the Redis copy from
PostgreSQL after commit, so a freeze reaches every process within `API_KEY_CACHE_SECONDS` (2 s by default).

Why writers SET and readers SET NX: a reader that loaded the row just before a freeze committed must not put its
stale copy back after the writer refreshed it. A reader only fills an empty slot; the writer always overwrites.
A Terms version that takes effect later reaches the snapshots within the Redis TTL of its effective time.
PostgreSQL stays the source of truth: a missing snapshot is rebuilt from it. While PostgreSQL is unreachable, a
process keeps using its last copy of a key; a key it has never seen gets 503.
"""

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, fields

import orjson
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apikeys.errors import InvalidApiKeyError, KeyFrozenError, TermsNotAcceptedError
from apikeys.keys import hash_key, is_well_formed
from apikeys.models import ApiKey, KeyState
from core.db import DATABASE_UNAVAILABLE_ERRORS
from core.redis import guarded_redis_client, redis_breaker_trip, redis_client
from legal.selectors import organization_has_accepted_current_terms

logger = logging.getLogger(__name__)
_REDIS_TTL_SECONDS = 30
_LOCAL_MAX_ENTRIES = 50_000
_local: dict[str, tuple[float, "ApiKeyContext | None"]] = {}


@dataclass(frozen=True)
class ApiKeyContext:
    key_id: int
    organization_id: int
    tier_code: str
    state: str
    expires_at: float | None  # epoch seconds
    terms_accepted: bool
    # The organization is throttled (its limits scaled down for extraction risk): its answers carry the label only,
    # so that what it keeps receiving while it is watched teaches a copy as little as the API can.
    restricted: bool = False


def _redis_key(key_hash: str) -> str:
    return f"moat:apikey:{key_hash}"


def _snapshot_from_database(key_hash: str) -> ApiKeyContext | None:
    api_key = ApiKey.objects.select_related("organization__tier").filter(key_hash=key_hash).first()
    if api_key is None:
        return None
    return ApiKeyContext(
        key_id=api_key.pk,
        organization_id=api_key.organization_id,
        tier_code=api_key.organization.tier.code,
        state=api_key.state,
        expires_at=api_key.expires_at.timestamp() if api_key.expires_at else None,
        terms_accepted=organization_has_accepted_current_terms(organization_id=api_key.organization_id),
        restricted=api_key.organization.throttle_factor < 1,
    )


_CONTEXT_FIELDS = frozenset(field.name for field in fields(ApiKeyContext))


def _context(data: dict) -> ApiKeyContext:
    # A snapshot written by another release (a rolling deploy) may carry a field this one does not know, or lack one
    # it added with a default: read what both know rather than fail the request.
    return ApiKeyContext(**{key: value for key, value in data.items() if key in _CONTEXT_FIELDS})


def _encode(context: ApiKeyContext | None) -> bytes:
    return orjson.dumps(asdict(context) if context else {})


def _load(key_hash: str) -> ApiKeyContext | None:
    now = time.monotonic()
    cached = _local.get(key_hash)
    if cached is not None and now - cached[0] < settings.API_KEY_CACHE_SECONDS:
        return cached[1]
    try:
        connection = guarded_redis_client(_redis_key(key_hash))
        raw = connection.get(_redis_key(key_hash))
    except redis.RedisError:
        redis_breaker_trip(_redis_key(key_hash))
        # Redis is down: keys must still be checked (enterprise keeps being served), so PostgreSQL answers. The
        # last copy stays usable for the cache period, then each lookup re-reads the row.
        return cached[1] if cached is not None else _snapshot_from_database(key_hash)
    if raw is not None:
        data = orjson.loads(raw)
        context = _context(data) if data else None
    else:
        try:
            context = _snapshot_from_database(key_hash)
        except DATABASE_UNAVAILABLE_ERRORS:
            if cached is None:
                raise  # never seen here: the caller answers 503
            # PostgreSQL is away (a restart): the last copy stays usable until it answers again. A freeze written
            # before the outage reached this copy within API_KEY_CACHE_SECONDS, and none can be written during it.
            _local[key_hash] = (now, cached[1])
            return cached[1]
        with contextlib.suppress(redis.RedisError):
            connection.set(_redis_key(key_hash), _encode(context), ex=_REDIS_TTL_SECONDS, nx=True)
    if len(_local) >= _LOCAL_MAX_ENTRIES:
        _local.clear()
    _local[key_hash] = (now, context)
    return context


def apikey_context(*, raw_key: str | None) -> ApiKeyContext:
    """The calling key's snapshot, or the error to answer: InvalidApiKeyError (missing, malformed, unknown,
    revoked, expired), KeyFrozenError, TermsNotAcceptedError. Raises redis.RedisError when Redis is down, and
    django.db's OperationalError when PostgreSQL is too and this process has no copy of the key."""
    if not raw_key or not is_well_formed(raw_key):
        raise InvalidApiKeyError("Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.")
    context = _load(hash_key(raw_key))
    if context is None:
        raise InvalidApiKeyError("Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.")
    if context.state == KeyState.FROZEN:
        raise KeyFrozenError("This API key is frozen pending an abuse review. Contact support to appeal.")
    if context.state != KeyState.ACTIVE or (
        context.expires_at is not None and context.expires_at <= timezone.now().timestamp()
    ):
        raise InvalidApiKeyError("This API key has been revoked or has expired.")
    if not context.terms_accepted:
        raise TermsNotAcceptedError(
            "Your organization has not accepted the current Terms of Service. Sign in to the portal to accept them."
        )
    return context


def _refresh(key_hashes: list[str]) -> None:
    for key_hash in key_hashes:
        _local.pop(key_hash, None)  # the writing process itself sees its change at once
    connection = redis_client()
    pipe = connection.pipeline(transaction=False)
    for key_hash in key_hashes:
        pipe.set(_redis_key(key_hash), _encode(_snapshot_from_database(key_hash)), ex=_REDIS_TTL_SECONDS)
    try:
        pipe.execute()
    except redis.RedisError:
        # The write itself has committed; if Redis is away now, its copies expire within the TTL (and a Redis
        # that lost its data has none). Never fail the request that made the change.
        logger.warning("could not refresh %d API key snapshots in Redis", len(key_hashes), exc_info=True)


def apikey_cache_refresh_for_organization(*, organization_id: int) -> None:
    """After the current transaction commits, rewrite the Redis snapshots of every key of an organization."""
    hashes = list(ApiKey.objects.filter(organization_id=organization_id).values_list("key_hash", flat=True))
    if hashes:
        transaction.on_commit(lambda: _refresh(hashes), robust=True)


def apikey_cache_drop_all() -> None:
    """Drop every key snapshot after commit (a Terms version that takes effect now changes them all)."""

    def drop() -> None:
        connection = redis_client()
        for batch in _batched(connection.scan_iter(match="moat:apikey:*", count=1000), 500):
            connection.delete(*batch)

    transaction.on_commit(drop, robust=True)


def _batched(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def apikey_cache_forget_local() -> None:
    """Forget this process's copies (tests use it to skip the few seconds a real process would wait)."""
    _local.clear()
