"""Running one campaign over HTTP: an actor (one or several API keys) sends a strategy's batches at its pace,
records every answer, and notes from the responses alone when each key was throttled or frozen.

The actor is a rational attacker: full batches, as fast as the key's per-minute limit allows (`/v1/usage` says
what it is), a 429 waited out as its Retry-After says, a frozen key dropped. A sybil ring is one actor whose
batches go round-robin over its keys at the same aggregate pace, so detection delays compare across campaigns; what
the ring gains is several daily quotas. What it learns is what the answers carry; the copy is trained elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from redteam.client import ApiAnswer, ApiClient, ClientError
from redteam.strategies import Strategy
from serving.input_schema import InputSchema

logger = logging.getLogger(__name__)

# An answer asking us to wait longer than this is a daily or monthly limit: that key is done for the exercise.
LONG_WAIT_SECONDS = 300
# Transient failures (5xx, connection errors) are retried this many times per batch, with a growing pause.
RETRIES = 5
# The actor stays this far under its per-minute limit, so that calendar-minute edges do not cost it 429s.
PACE_MARGIN = 0.95

THROTTLED = "throttled"
FROZEN = "frozen"
EXHAUSTED = "limit_reached"
FAILED = "failed"


@dataclass
class Account:
    """One API key of an actor and the limits the API announced for it."""

    label: str
    email: str
    api: ApiClient
    per_minute: int = 0
    max_batch: int = 1
    announced_limits: frozenset[int] = frozenset()
    answered: int = 0
    not_before: float = 0.0
    throttled: bool = False

    def load_limits(self) -> None:
        """Read the key's limits from `GET /v1/usage`, as any client can."""
        answer = self.api.usage()
        if answer.status != 200:
            raise ClientError(f"{self.label}: /v1/usage answered HTTP {answer.status} {answer.error_code}")
        limits = answer.body["limits"]
        self.per_minute = int(limits["requests_per_minute"])
        self.max_batch = int(limits["max_batch_size"])
        self.announced_limits = frozenset(
            int(limits[name])
            for name in ("requests_per_minute", "requests_per_hour", "requests_per_day", "monthly_included_requests")
        )


@dataclass(frozen=True)
class AccountEvent:
    """A moment seen in the responses: `queries` counts the whole actor's answered inputs, `account_queries` the
    key's own, `seconds` run from the campaign's first request."""

    account: str
    kind: str
    queries: int
    account_queries: int
    seconds: float
    detail: str = ""


@dataclass
class CampaignLog:
    """Everything one campaign sent and was answered, in order."""

    inputs: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    confidences: list[np.ndarray] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    events: list[AccountEvent] = field(default_factory=list)
    requests: int = 0
    answered: int = 0
    seconds: float = 0.0
    stopped: str = ""

    def answered_inputs(self) -> np.ndarray:
        return np.concatenate(self.inputs) if self.inputs else np.zeros((0, 0))

    def answered_labels(self) -> np.ndarray:
        return np.concatenate(self.labels) if self.labels else np.zeros(0, dtype=np.int64)

    def answered_confidences(self) -> np.ndarray:
        return np.concatenate(self.confidences) if self.confidences else np.zeros(0)

    def answered_probabilities(self) -> np.ndarray | None:
        return np.concatenate(self.probabilities) if self.probabilities else None

    def first(self, kind: str) -> AccountEvent | None:
        return next((event for event in self.events if event.kind == kind), None)


def is_throttled(limit: int | None, announced: frozenset[int]) -> bool:
    """A response's X-RateLimit-Limit that is none of the tier's announced limits is a scaled one: the platform
    lowered this organization's limits (adaptive throttling)."""
    return limit is not None and bool(announced) and limit not in announced


def _parse_predictions(answer: ApiAnswer, classes: list[str], size: int):
    predictions = answer.body.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != size:
        raise ClientError(f"the API answered {len(predictions or [])} predictions for {size} inputs")
    index = {label: i for i, label in enumerate(classes)}
    labels = np.array([index.get(str(item["label"]), -1) for item in predictions], dtype=np.int64)
    confidences = np.array([float(item.get("confidence", 1.0)) for item in predictions])
    probabilities = None
    if all("probabilities" in item for item in predictions):
        probabilities = np.array([item["probabilities"] for item in predictions], dtype=np.float64)
    return labels, confidences, probabilities


def run_campaign(
    *,
    accounts: list[Account],
    strategy: Strategy,
    model: str,
    schema: InputSchema,
    budget: int,
    deadline: float,
    classes: list[str],
    stop: threading.Event | None = None,
) -> CampaignLog:
    """Send up to `budget` answered inputs through the accounts to `model`, until every key is frozen or spent, or
    the monotonic `deadline` passes. The strategy's rows are codes of `schema`, sent as its values and logged as
    codes. Never raises for what the platform answers; the log says why it stopped."""
    log = CampaignLog()
    active = list(accounts)
    per_minute = min(account.per_minute for account in accounts)
    pace = max(per_minute * PACE_MARGIN / 60.0, 1e-6)  # answered inputs per second, for the whole actor
    started = time.monotonic()
    next_send = started
    pending: np.ndarray | None = None  # a batch refused for a while is sent again, not replaced
    turn, failures = 0, 0

    def note(account: Account, kind: str, detail: str = "") -> None:
        log.events.append(
            AccountEvent(account.label, kind, log.answered, account.answered, time.monotonic() - started, detail)
        )

    while log.answered < budget and active:
        now = time.monotonic()
        if now >= deadline or (stop is not None and stop.is_set()):
            log.stopped = "deadline"
            break
        ready = [account for account in active if account.not_before <= now]
        if not ready:
            time.sleep(min(min(a.not_before for a in active), deadline) - now)
            continue
        account = ready[turn % len(ready)]
        turn += 1
        size = min(account.max_batch, budget - log.answered)
        if pending is None or pending.shape[0] != size:
            pending = strategy.next_batch(size) if pending is None else pending[:size]
        if next_send > now:
            time.sleep(min(next_send, deadline) - now)
        sent_at = time.monotonic()
        try:
            answer = account.api.predict(schema.values(pending), model=model)
        except ClientError as exc:
            answer = ApiAnswer(0, {"error": {"code": "unreachable", "message": str(exc)}})
        log.requests += 1
        if is_throttled(answer.header_int("X-RateLimit-Limit"), account.announced_limits) and not account.throttled:
            account.throttled = True
            note(account, THROTTLED, f"X-RateLimit-Limit {answer.header_int('X-RateLimit-Limit')}")
        if answer.status == 200:
            labels, confidences, probabilities = _parse_predictions(answer, classes, size)
            log.inputs.append(pending)
            log.labels.append(labels)
            log.confidences.append(confidences)
            if probabilities is not None:
                log.probabilities.append(probabilities)
            strategy.observe(pending, labels, confidences)
            pending, failures = None, 0
            log.answered += size
            account.answered += size
            next_send = max(next_send, sent_at) + size / pace
        elif answer.status == 429:
            wait = answer.header_int("Retry-After") or 1
            if wait > LONG_WAIT_SECONDS:
                note(account, EXHAUSTED, f"Retry-After {wait} s")
                active.remove(account)
            else:
                account.not_before = time.monotonic() + wait
        elif answer.status == 403 and answer.error_code == "key_frozen":
            note(account, FROZEN)
            active.remove(account)
        elif answer.status in (0, 502, 503, 504) and failures < RETRIES:
            failures += 1
            time.sleep(0.5 * 2**failures)
        else:
            note(account, FAILED, f"HTTP {answer.status} {answer.error_code}")
            logger.warning("red team: %s stopped on HTTP %s %s", account.label, answer.status, answer.error_code)
            active.remove(account)
    if not log.stopped:
        log.stopped = "budget" if log.answered >= budget else "no usable key left"
    log.seconds = time.monotonic() - started
    return log


def event_summary(event: AccountEvent | None) -> dict[str, Any] | None:
    """An event as the run's summary stores it (JSON), or None."""
    if event is None:
        return None
    return {
        "account": event.account,
        "kind": event.kind,
        "queries": event.queries,
        "account_queries": event.account_queries,
        "seconds": round(event.seconds, 1),
        "detail": event.detail,
    }
