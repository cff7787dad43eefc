"""The deployment-wide series, made at scrape time from `monitoring.selectors`: the same on every web host (read
them with max(), or scrape one host for them). A source that cannot be read leaves its series out and says so in
`moat_state_source_up`, so a scrape never fails because PostgreSQL or Redis is away."""

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.db import DATABASE_UNAVAILABLE_ERRORS
from monitoring.selectors import RISK_SCORE_BUCKETS, celery_task_outcomes, database_state, querylog_state

logger = logging.getLogger(__name__)


class PlatformStateCollector(Collector):
    def collect(self) -> Iterator:
        up = GaugeMetricFamily("moat_state_source_up", "Whether the scrape could read this source.", labels=["source"])
        try:
            yield from self._redis_families()
            up.add_metric(["redis"], 1)
        except redis.RedisError:
            logger.warning("metrics: Redis could not be read")
            up.add_metric(["redis"], 0)
        try:
            yield from self._database_families()
            up.add_metric(["postgresql"], 1)
        except DATABASE_UNAVAILABLE_ERRORS:
            logger.warning("metrics: PostgreSQL could not be read")
            up.add_metric(["postgresql"], 0)
        yield up

    def _redis_families(self) -> list:
        state = querylog_state()
        outcomes = celery_task_outcomes()
        backlog = GaugeMetricFamily(
            "moat_querylog_backlog", "Query-log records appended in Redis and not yet stored in PostgreSQL."
        )
        backlog.add_metric([], state.backlog)
        lag = GaugeMetricFamily(
            "moat_querylog_flush_lag_seconds", "Age of the oldest query-log record still waiting for the flusher."
        )
        lag.add_metric([], state.lag_seconds)
        tasks = CounterMetricFamily(
            "moat_celery_tasks", "Celery task runs by task and outcome (SUCCESS, FAILURE, RETRY).",
            labels=["task", "outcome"],
        )  # fmt: skip
        for (task, outcome), count in sorted(outcomes.items()):
            tasks.add_metric([task, outcome], count)
        return [backlog, lag, tasks]

    def _database_families(self) -> list:
        state = database_state()
        frozen = GaugeMetricFamily("moat_frozen_api_keys", "API keys frozen now.")
        frozen.add_metric([], state.frozen_keys)
        throttled = GaugeMetricFamily("moat_throttled_organizations", "Organizations whose limits are throttled now.")
        throttled.add_metric([], state.throttled_organizations)
        dead = GaugeMetricFamily("moat_celery_dead_letters", "Tasks given up on, awaiting a rerun or dismissal.")
        dead.add_metric([], state.dead_letters)
        actions = CounterMetricFamily(
            "moat_abuse_actions", "Freezes, throttles and their reversals, by the jobs or by staff (the audit log).",
            labels=["action"],
        )  # fmt: skip
        for action, count in state.abuse_actions.items():
            actions.add_metric([action], count)
        buckets = [(str(bound), sum(score <= bound for score in state.risk_scores)) for bound in RISK_SCORE_BUCKETS]
        buckets.append(("+Inf", len(state.risk_scores)))
        risk = GaugeHistogramMetricFamily(
            "moat_risk_score", "Organizations by their current extraction-risk score (0-100).",
            buckets=buckets, gsum_value=sum(state.risk_scores),
        )  # fmt: skip
        return [frozen, throttled, dead, actions, risk]
