"""The platform's own Prometheus series, counted where things happen (`prometheus_client`).

Per-process series, counted by the web process that answered: with `PROMETHEUS_MULTIPROC_DIR` set (bin/web sets it)
every gunicorn or granian worker writes its values to a file there and the scrape adds them up, so a scrape sees the
whole server whichever worker answers it. Label values are the route, the model's slug, the tier's code, the status
and the quota window: never an organization, a key or an email, and never what a caller typed (an unknown model is
counted under model="").

What holds for the whole deployment (the query-log backlog, Celery's task outcomes, freezes, risk scores) is read
when scraped (`monitoring.collectors`).
"""

import contextlib

import redis
from prometheus_client import Counter, Histogram

from core.redis import redis_client

API_REQUESTS = Counter(
    "moat_api_requests", "API calls answered, by route, served model, tier and HTTP status.",
    ["route", "model", "tier", "status"],
)  # fmt: skip
API_LATENCY = Histogram(
    "moat_api_request_duration_seconds", "Time from an API call's arrival to its answer, by route and tier.",
    ["route", "tier"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)  # fmt: skip
PREDICTIONS = Counter("moat_predictions", "Inputs answered (and billed), by model and tier.", ["model", "tier"])
QUOTA_REFUSALS = Counter(
    "moat_quota_refusals", "Calls refused with 429 by a quota window, by window and tier.", ["window", "tier"]
)

# Celery's task outcomes, counted in Redis by whichever worker ran the task (workers may run on many machines).
CELERY_OUTCOMES_KEY = "moat:metrics:celery-task-outcomes"


def api_call_observed(
    *, route: str, model: str, tier: str, status: int, seconds: float, predictions: int, refused_window: str
) -> None:
    """Count one answered API call (every route of /v1 and /v2 comes through here once). About 8 us in multiprocess
    mode (memory-mapped increments under a lock): half a percent of a single prediction's worker time."""
    API_REQUESTS.labels(route, model, tier, str(status)).inc()
    API_LATENCY.labels(route, tier).observe(seconds)
    if predictions:
        PREDICTIONS.labels(model, tier).inc(predictions)
    if refused_window:
        QUOTA_REFUSALS.labels(refused_window, tier).inc()


def celery_task_finished(*, task: str, outcome: str) -> None:
    """Count a task run's outcome (SUCCESS, FAILURE or RETRY). Bookkeeping: Redis trouble never fails the task."""
    with contextlib.suppress(redis.RedisError):
        redis_client().hincrby(CELERY_OUTCOMES_KEY, f"{task}|{outcome}", 1)
