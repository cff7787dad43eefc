"""One Redis connection pool per process and URL, with short timeouts so a slow Redis cannot hang a request."""

import time
from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30)


def redis_client() -> redis.Redis:
    """The client for settings.REDIS_URL (looked up per call, so a test can point the process elsewhere)."""
    return _client(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


# A circuit breaker: after a failure, calls skip Redis for a second instead of each waiting out the timeout, so
# an outage costs the fallback paths nothing and exact limiting resumes within about a second of Redis returning.
_BREAKER_SECONDS = 1.0
_open_until = 0.0


def redis_breaker_open() -> bool:
    return time.monotonic() < _open_until


def redis_breaker_trip() -> None:
    """Open the breaker for a second after a failed call. An open breaker is not extended: a call refused because
    the breaker was open says nothing about Redis, and extending on it kept the breaker open for as long as the
    load lasted, long after Redis was back."""
    global _open_until
    now = time.monotonic()
    if now >= _open_until:
        _open_until = now + _BREAKER_SECONDS


def redis_breaker_reset() -> None:
    global _open_until
    _open_until = 0.0


def guarded_redis_client() -> redis.Redis:
    """The client, or redis.ConnectionError at once while the breaker is open."""
    if redis_breaker_open():
        raise redis.ConnectionError("Redis was unreachable a moment ago")
    return redis_client()
