"""One campaign over a scripted API: what is counted, and when the responses say a key was throttled or frozen."""

import time

import numpy as np
import pytest

from redteam.campaigns import EXHAUSTED, FROZEN, THROTTLED, Account, is_throttled, run_campaign
from redteam.client import ApiAnswer, ClientError
from redteam.strategies import UniformRandom
from serving.input_schema import InputSchema
from serving.ml.digits import INPUT_SCHEMA

CLASSES = [str(d) for d in range(10)]
LIMITS = frozenset({600, 36_000, 10_000, 30_000})


class ScriptedApi:
    """Answers predictions from a script of (status, error code, X-RateLimit-Limit, Retry-After); 200 by default."""

    def __init__(self, script: list[tuple] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[int] = []

    def predict(self, inputs: np.ndarray, *, model: str) -> ApiAnswer:
        assert model == "digits"
        self.calls.append(inputs.shape[0])
        status, code, limit, retry = self.script.pop(0) if self.script else (200, "", 600, None)
        headers = {"x-ratelimit-limit": str(limit)}
        if retry is not None:
            headers["retry-after"] = str(retry)
        if status == "down":
            raise ClientError("connection refused")
        if status != 200:
            return ApiAnswer(status, {"error": {"code": code, "message": ""}}, headers)
        predictions = [{"label": str(int(row.sum()) % 10), "confidence": 0.9} for row in inputs]
        return ApiAnswer(200, {"predictions": predictions}, headers)


def _account(api, label="free/uniform/1", per_minute=600_000):
    return Account(
        label=label, email=f"{label}@x.example", api=api, per_minute=per_minute, max_batch=10,
        announced_limits=LIMITS,
    )  # fmt: skip


SCHEMA = InputSchema.from_dict(INPUT_SCHEMA)


def _run(accounts, budget, **kwargs):
    return run_campaign(
        accounts=accounts, strategy=UniformRandom(SCHEMA, seed=0), model="digits", schema=SCHEMA, budget=budget,
        deadline=time.monotonic() + 30, classes=CLASSES, **kwargs,
    )  # fmt: skip


def test_throttling_is_read_from_a_limit_the_tier_never_announced():
    assert not is_throttled(600, LIMITS)
    assert is_throttled(150, LIMITS)
    assert not is_throttled(None, LIMITS)


def test_every_answered_input_is_recorded_with_its_label_and_confidence():
    api = ScriptedApi()
    log = _run([_account(api)], 45)
    assert log.answered == 45 and log.requests == 5 and api.calls == [10, 10, 10, 10, 5]
    assert log.answered_inputs().shape == (45, 64)
    assert log.answered_labels().tolist() == [int(row.sum()) % 10 for row in log.answered_inputs()]
    assert log.answered_confidences().tolist() == [0.9] * 45
    assert log.stopped == "budget" and not log.events


def test_a_throttle_then_a_freeze_are_noted_in_queries_and_seconds_and_the_refused_batch_is_not_counted():
    api = ScriptedApi([(200, "", 600, None), (200, "", 150, None), (429, "rate_limited", 150, 1), (200, "", 150, None),
                       (403, "key_frozen", None, None)])  # fmt: skip
    log = _run([_account(api)], 100)
    assert log.answered == 30
    throttle, freeze = log.events
    assert (throttle.kind, throttle.queries, freeze.kind, freeze.queries) == (THROTTLED, 10, FROZEN, 30)
    assert freeze.seconds >= 1.0  # the Retry-After was waited out
    assert log.stopped == "no usable key left"
    # The batch refused with 429 was sent again, unchanged: the strategy was not asked for a new one.
    assert api.calls == [10, 10, 10, 10, 10]


def test_a_long_retry_after_means_the_key_is_spent_and_a_ring_goes_on_with_its_other_keys():
    spent, other = ScriptedApi([(200, "", 600, None), (429, "rate_limited", 10_000, 40_000)]), ScriptedApi()
    log = _run([_account(spent, "free/sybil/1"), _account(other, "free/sybil/2")], 60)
    assert log.answered == 60
    assert [(e.account, e.kind, e.queries, e.account_queries) for e in log.events] == [
        ("free/sybil/1", EXHAUSTED, 20, 10)
    ]


def test_transient_failures_are_retried_and_a_persistent_error_stops_the_key():
    api = ScriptedApi([("down", "", None, None), (503, "service_unavailable", None, None), (200, "", 600, None)])
    assert _run([_account(api)], 10).answered == 10
    log = _run([_account(ScriptedApi([(403, "terms_not_accepted", None, None)]))], 10)
    assert log.answered == 0 and log.events[0].detail == "HTTP 403 terms_not_accepted"


def test_the_actor_keeps_to_its_per_minute_pace():
    started = time.monotonic()
    log = _run([_account(ScriptedApi(), per_minute=12_000)], 40)  # 200 inputs/s * 0.95: 10 every ~53 ms
    assert log.answered == 40
    assert time.monotonic() - started == pytest.approx(3 * 10 / (200 * 0.95), abs=0.1)
