"""Quotas: one atomic Redis round trip admits or refuses an API call and appends its query-log record.

Policy when Redis is unreachable (fail closed for the public, open within bounds for contracts):
- public tiers (free, pro) get 503 `service_unavailable` with Retry-After: no counter, no serving;
- enterprise keys are served under a conservative per-process limit (`QUOTA_FALLBACK_FRACTION` of the tier's
  per-minute limit, per organization, per web process); their records wait in the process's memory and are
  appended once Redis answers again, so they are still billed and seen by the abuse jobs, and the calls are
  charged to the counters of the windows they fell in (fallback_charge.lua), so limiting is exact again at once.
Counters a Redis restart lost are rebuilt from PostgreSQL before the next decision (the script asks for it), so
a restart never hands an organization a fresh monthly quota.
"""

import collections
import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import redis
from django.conf import settings
from django.db.models import Sum
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from accounts.models import Organization
from core.db import DATABASE_UNAVAILABLE_ERRORS
from core.redis import guarded_redis_client, redis_breaker_trip
from serving.predictions.models import QueryLog
from serving.predictions.querylog import QueryRecord, record_payload, shard_tag, stream_key
from tiers.cache import TierSnapshot

logger = logging.getLogger(__name__)
_SCRIPT_SOURCE = (Path(__file__).parent / "quota.lua").read_text()
_CHARGE_SCRIPT_SOURCE = (Path(__file__).parent / "fallback_charge.lua").read_text()
_MONTH_TTL_SECONDS = 40 * 86400
_script = None
_charge_script = None


@dataclass(frozen=True)
class Decision:
    admitted: bool
    # Not admitted because the organization reached its monthly spend cap (402), rather than a rate limit (429).
    window: str
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int = 0
    spend_capped: bool = False


def _quota_script(connection: redis.Redis):
    global _script
    if _script is None:
        _script = connection.register_script(_SCRIPT_SOURCE)  # EVALSHA, loading the script once if Redis lacks it
    return _script


def _fallback_charge_script(connection: redis.Redis):
    global _charge_script
    if _charge_script is None:
        _charge_script = connection.register_script(_CHARGE_SCRIPT_SOURCE)
    return _charge_script


def counter_keys(*, organization_id: int, key_id: int) -> tuple[str, str]:
    tag = shard_tag(organization_id)
    return f"moat:{tag}:k:{key_id}", f"moat:{tag}:o:{organization_id}"


def monthly_usage_from_database(*, organization_id: int, period: str) -> int:
    """Units served in a calendar month (YYYYMM), as recorded in PostgreSQL."""
    start = datetime(int(period[:4]), int(period[4:]), 1, tzinfo=UTC)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    total = QueryLog.objects.filter(
        organization_id=organization_id, created_at__gte=start, created_at__lt=end, endpoint="predict", status=200
    ).aggregate(units=Sum("batch_size"))["units"]
    return int(total or 0)


def _seed(connection: redis.Redis, *, organization_id: int, period: str) -> None:
    """Rebuild what Redis lost for an organization: the month's units from PostgreSQL, the adaptive factor."""
    _, org_prefix = counter_keys(organization_id=organization_id, key_id=0)
    used = monthly_usage_from_database(organization_id=organization_id, period=period)
    connection.set(f"{org_prefix}:mo:{period}", used, nx=True, ex=_MONTH_TTL_SECONDS)
    factor = Organization.objects.filter(pk=organization_id).values_list("throttle_factor", flat=True).first()
    if factor is not None and factor < 1:
        connection.set(f"{org_prefix}:factor", str(factor), nx=True)


class QuotaOutcomeUnknownError(redis.RedisError):
    """The quota script was sent and no answer came back: it may have run (counted the call and appended its
    record) before Redis went away. A call then served under the fallback is checked before it is charged again."""


def quota_consume(
    *, organization_id: int, key_id: int, tier: TierSnapshot, cost: int, billable: bool, record: QueryRecord
) -> Decision:
    """Admit the call (counting `cost` units in every window) and append `record`, or refuse it and append a
    throttle record naming the window; both in one atomic script. Raises redis.RedisError: QuotaOutcomeUnknownError
    once the script was sent, a plain one while the breaker keeps Redis skipped."""
    stream = stream_key(organization_id)  # the shard's slot: its master's breaker
    connection = guarded_redis_client(stream)
    key_prefix, org_prefix = counter_keys(organization_id=organization_id, key_id=key_id)
    refused = replace(
        record, status=429, error_code="rate_limited", limit_window="__WINDOW__", inputs=b"", labels=[],
        clean_labels=[], confidences=[], watermarked=[],
    )  # fmt: skip
    args = [
        cost, int(billable), int(not tier.overage_allowed),
        tier.key_requests_per_minute, tier.key_requests_per_hour, tier.key_requests_per_day,
        tier.requests_per_minute, tier.requests_per_hour, tier.requests_per_day,
        tier.monthly_included_requests, record_payload(record), record_payload(refused),
    ]  # fmt: skip
    keys = [key_prefix, org_prefix, stream]
    script = _quota_script(connection)
    try:
        for _ in range(2):
            result = script(keys=keys, args=args, client=connection)
            if result[0] != b"seed":
                break
            _seed(connection, organization_id=organization_id, period=result[1].decode())
        else:
            raise redis.RedisError("quota counters could not be rebuilt")
    except redis.RedisError as exc:
        # Logged once per breaker period and process: while the breaker is open, calls never get here.
        logger.warning("quota check failed; Redis is skipped for a second: %s", exc)
        redis_breaker_trip(stream)
        raise QuotaOutcomeUnknownError(str(exc)) from exc
    _drain_when_due(connection)
    status, window, limit, remaining, reset, retry_after = result
    return Decision(
        admitted=status == b"ok",
        spend_capped=status == b"capped",
        window=window.decode(),
        limit=int(limit),
        remaining=int(remaining),
        reset_seconds=max(int(reset), 0),
        retry_after=max(int(retry_after), 1) if status != b"ok" else 0,
    )


# --- The fallback while Redis is unreachable ----------------------------------------------------------------
_fallback_lock = threading.Lock()
_fallback_buckets: dict[int, tuple[float, float]] = {}  # organization -> (tokens, last refill, monotonic)
# (record, cost, billable, the key windows quota.lua keeps, whether the quota script may have counted it already) of
# each call served under the fallback, to be charged and appended when Redis is back.
_fallback_records: collections.deque[tuple[QueryRecord, int, bool, str, bool]] = collections.deque(maxlen=100_000)


def _key_windows_kept(tier: TierSnapshot) -> str:
    """The per-key windows quota.lua counts: those whose limit is below the organization's (m, h, d)."""
    pairs = (
        ("m", tier.key_requests_per_minute, tier.requests_per_minute),
        ("h", tier.key_requests_per_hour, tier.requests_per_hour),
        ("d", tier.key_requests_per_day, tier.requests_per_day),
    )
    return "".join(name for name, key_limit, organization_limit in pairs if key_limit < organization_limit)


def fallback_admit(
    *,
    organization_id: int,
    tier: TierSnapshot,
    cost: int,
    record: QueryRecord,
    billable: bool = False,
    outcome_unknown: bool = False,
) -> Decision:
    """A per-process token bucket for the enterprise tier while Redis is down; admitted calls are kept to be
    charged and appended when Redis is back. `outcome_unknown`: the quota script may already have counted this call
    (QuotaOutcomeUnknownError), so the drain checks first."""
    rate_per_second = max(tier.requests_per_minute * settings.QUOTA_FALLBACK_FRACTION / 60.0, 0.0)
    capacity = max(rate_per_second * 60.0, 1.0)
    now = time.monotonic()
    with _fallback_lock:
        tokens, last = _fallback_buckets.get(organization_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate_per_second)
        admitted = tokens >= cost
        if admitted:
            tokens -= cost
            _fallback_records.append((record, cost, billable, _key_windows_kept(tier), outcome_unknown))
        _fallback_buckets[organization_id] = (tokens, now)
    retry_after = 0 if admitted else max(int((cost - tokens) / rate_per_second) + 1 if rate_per_second else 60, 1)
    return Decision(
        admitted=admitted,
        window="fallback_minute",
        limit=int(capacity),
        remaining=int(tokens),
        reset_seconds=60,
        retry_after=retry_after,
    )


_DRAIN_RETRY_SECONDS = 1.0
_drain_not_before = 0.0


def _drain_when_due(connection: redis.Redis) -> None:
    """Drain the fallback's records after a decision, at most once a second after a drain failed. The decision stands
    whatever the drain does: this call's script ran (it is counted and recorded), so it must be answered as decided.
    (On a Redis Cluster the drain can fail while this call succeeded: the records of a shard whose master is still
    failing over wait, the others are charged.)"""
    global _drain_not_before
    if not _fallback_records or time.monotonic() < _drain_not_before:
        return
    try:
        fallback_drain(connection)
    except redis.RedisError as exc:
        _drain_not_before = time.monotonic() + _DRAIN_RETRY_SECONDS
        logger.warning("%d calls served under the fallback wait for their shard: %s", fallback_pending(), exc)


def fallback_drain(connection: redis.Redis) -> int:
    """Charge the calls served while Redis was down to the windows they fell in and append their records; returns
    how many. Cheap when there are none.

    On a Redis Cluster, one pipeline per master, each failing or succeeding with its master: when one master is
    still failing over, only the calls of its shards wait for the next drain, and the calls charged on the other
    masters are not charged again (re-queueing a whole batch that spanned masters did that)."""
    if not _fallback_records:
        return 0
    script = _fallback_charge_script(connection)
    drained = 0
    while _fallback_records:
        with _fallback_lock:
            batch = [_fallback_records.popleft() for _ in range(min(500, len(_fallback_records)))]
        # Only the few calls whose quota script was sent unanswered are looked for (the ones in flight when Redis
        # went away): every other call of the outage never reached Redis.
        unknown = [record for record, *_, outcome_unknown in batch if outcome_unknown]
        stored = _already_stored(unknown) if unknown else set()
        by_master: dict[str, list] = collections.defaultdict(list)
        for entry in batch:
            if entry[0].request_id not in stored:  # else the quota script counted it before its answer was lost
                by_master[_master_of(connection, entry[0].organization_id)].append(entry)
        failed: list = []
        error: redis.RedisError | None = None
        for master, entries in by_master.items():
            pipe = connection.pipeline(transaction=False)
            for record, cost, billable, key_windows, outcome_unknown in entries:
                month = datetime.fromtimestamp(record.created_at, tz=UTC).strftime("%Y%m")
                script(
                    keys=[*counter_keys(organization_id=record.organization_id, key_id=record.api_key_id),
                          stream_key(record.organization_id)],
                    args=[cost, int(billable), record.created_at, month, record_payload(record), key_windows,
                          record.request_id if outcome_unknown else ""],
                    client=pipe,
                )  # fmt: skip
            try:
                if master:
                    # A cluster pipeline cannot load a script its master lacks (a promoted replica starts with an
                    # empty script cache): load it there first. A master that is down fails only its own calls.
                    node = connection.get_node(node_name=master)
                    connection.execute_command("SCRIPT LOAD", _CHARGE_SCRIPT_SOURCE, target_nodes=node)
                pipe.execute()
            except redis.RedisError as exc:
                failed += entries
                error = exc
                continue
            drained += len(entries)
        if error is not None:
            with _fallback_lock:
                _fallback_records.extendleft(reversed(failed))
            raise error
        drained += len(batch) - sum(len(group) for group in by_master.values())
    return drained


def _master_of(connection: redis.Redis, organization_id: int) -> str:
    """The name of the master that serves the organization's shard now, as the client knows it ("" on a single
    Redis, and on a cluster for a slot the client knows no master of: the pipeline then finds one, or fails)."""
    if not isinstance(connection, RedisCluster):
        return ""
    try:
        return connection.get_node_from_key(stream_key(organization_id)).name
    except (redis.RedisError, RedisClusterException):
        return ""


def _already_stored(records: list[QueryRecord]) -> set[str]:
    """The request ids of these records whose answered (200) record is in PostgreSQL already: their quota script ran
    and the flusher moved its record before this drain. Best effort: with PostgreSQL away, none (the stream check in
    fallback_charge.lua still holds for records not yet flushed). A record is stored with its own time, so the
    lookup reads only the query log's partitions of the records' span, not every month's index."""
    times = [record.created_at for record in records]
    try:
        found = QueryLog.objects.filter(
            request_id__in=[record.request_id for record in records],
            created_at__gte=datetime.fromtimestamp(min(times) - 1, tz=UTC),
            created_at__lte=datetime.fromtimestamp(max(times) + 1, tz=UTC),
            status=200,
        ).values_list("request_id", flat=True)
        return {str(request_id) for request_id in found}
    except DATABASE_UNAVAILABLE_ERRORS:
        return set()


def fallback_pending() -> int:
    return len(_fallback_records)


def fallback_reset() -> None:
    """Forget this process's fallback buckets and buffered records (tests)."""
    global _drain_not_before
    _drain_not_before = 0.0
    with _fallback_lock:
        _fallback_buckets.clear()
        _fallback_records.clear()
