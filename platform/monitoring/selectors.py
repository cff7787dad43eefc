"""What the whole deployment is doing now, read for a metrics scrape from the sources of truth: Redis for the
query-log streams and Celery's task outcomes, PostgreSQL for freezes, throttles, risk scores and dead letters.
A few aggregate reads, each bounded by an index or a small table; a scrape every 15 seconds costs nothing."""

import time
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count

from abuse.models import AuditAction, AuditEntry, RiskState
from accounts.models import Organization
from apikeys.models import ApiKey, KeyState
from core.models import FailedTask
from core.redis import redis_client
from monitoring.metrics import CELERY_OUTCOMES_KEY
from serving.predictions.querylog import all_streams

# The abuse jobs' and reviewers' actions counted as events (the audit log is append-only: the counts only grow).
ABUSE_ACTIONS = (
    AuditAction.THROTTLE, AuditAction.CLEAR_THROTTLE, AuditAction.FREEZE, AuditAction.UNFREEZE,
    AuditAction.SUSPEND, AuditAction.UNSUSPEND, AuditAction.FALSE_POSITIVE,
)  # fmt: skip
RISK_SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


@dataclass(frozen=True)
class QueryLogState:
    backlog: int  # records appended to the streams and not yet stored in PostgreSQL
    lag_seconds: float  # the age of the oldest of them (0 when none waits)


@dataclass(frozen=True)
class DatabaseState:
    frozen_keys: int
    throttled_organizations: int
    dead_letters: int  # tasks given up on and not yet rerun or dismissed
    abuse_actions: dict[str, int] = field(default_factory=dict)
    risk_scores: list[int] = field(default_factory=list)  # every assessed organization's current score


def querylog_state() -> QueryLogState:
    """The streams' length and the age of their oldest entry (its id is its append time in milliseconds)."""
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    streams = all_streams()
    for stream in streams:
        pipe.xlen(stream)
        pipe.xrange(stream, count=1)
    replies = pipe.execute()
    backlog = sum(int(length) for length in replies[0::2])
    oldest = [int(entries[0][0].split(b"-")[0]) for entries in replies[1::2] if entries]
    lag = max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0
    return QueryLogState(backlog=backlog, lag_seconds=lag)


def celery_task_outcomes() -> dict[tuple[str, str], int]:
    """(task name, outcome) -> runs, since the counts began."""
    raw = redis_client().hgetall(CELERY_OUTCOMES_KEY)
    outcomes = {}
    for name, count in raw.items():
        task, _, outcome = name.decode().rpartition("|")
        outcomes[(task, outcome)] = int(count)
    return outcomes


def database_state() -> DatabaseState:
    actions = Counter(
        {
            row["action"]: row["n"]
            for row in AuditEntry.objects.filter(action__in=ABUSE_ACTIONS).values("action").annotate(n=Count("id"))
        }
    )
    return DatabaseState(
        frozen_keys=ApiKey.objects.filter(state=KeyState.FROZEN).count(),
        throttled_organizations=Organization.objects.filter(throttle_factor__lt=1).count(),
        dead_letters=FailedTask.objects.filter(resolved_at__isnull=True).count(),
        abuse_actions={str(action): actions.get(action, 0) for action in ABUSE_ACTIONS},
        risk_scores=list(RiskState.objects.filter(assessed_at__isnull=False).values_list("score", flat=True)),
    )
