"""The Redis circuit breaker: a second without Redis after a failure, and never longer than that on its own."""

import redis

import core.redis as core_redis
from core.redis import guarded_redis_client, redis_breaker_open, redis_breaker_trip


def test_a_failure_opens_the_breaker_for_a_second(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(core_redis.time, "monotonic", lambda: clock[0])
    redis_breaker_trip()
    assert redis_breaker_open()
    clock[0] += 0.99
    assert redis_breaker_open()
    clock[0] += 0.02
    assert not redis_breaker_open()


def test_calls_refused_while_the_breaker_is_open_do_not_keep_it_open(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(core_redis.time, "monotonic", lambda: clock[0])
    redis_breaker_trip()
    for _ in range(10):  # callers that catch the breaker's own refusal and report it as a failure
        clock[0] += 0.09
        try:
            guarded_redis_client()
        except redis.ConnectionError:
            redis_breaker_trip()
    clock[0] = 1001.01
    assert not redis_breaker_open()  # Redis is tried again a second after the real failure
