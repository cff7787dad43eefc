"""PostgreSQL stopped and started again under load (a real server of our own, on a Unix socket; never the machine's).

The promise: the prediction path keeps answering from what each process holds (key snapshots, tiers, models);
anything that needs PostgreSQL while it is down answers 503 with Retry-After at once (JSON under /v1/, the site's
own page elsewhere), never a 500 and never a hang; everything resumes within 5 s of PostgreSQL answering again;
and the query log reaches PostgreSQL with every answered prediction exactly once."""

import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg2
import pytest
from django.core.cache import cache
from django.test import Client

from config.celery_app import app
from core.redis import redis_client
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_pending
from serving.registry.selectors import GENERATION_KEY
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.faults.load import Load, api_request, first_success_after, predict_request, wait_until
from tests.processes import PostgresServer, celery_worker, child_pids, database_url_for_tests, web_server
from tiers.models import Tier

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

DOWN_SECONDS = 6  # longer than the tiers' 5 s refresh: every web process meets PostgreSQL gone at least once


def _beat(stop: threading.Event) -> None:
    """The beat's part in this test: a query-log flush every half second."""
    while not stop.wait(0.5):
        app.send_task("predictions.flush_query_log")


def _bump_registry_generation() -> None:
    """What activating a model version does: every web process re-reads the registry at its next request."""
    cache.add(GENERATION_KEY, 0, timeout=None)
    cache.incr(GENERATION_KEY)


def _expire_key_snapshots() -> None:
    """Redis's copies of the key snapshots expire (30 s TTL): the processes must do with their own copies."""
    connection = redis_client()
    connection.delete(*connection.keys("moat:apikey:*"))


def _served_predictions(log: Path, workers: list[int]) -> bool:
    """Whether each of `workers` has answered a prediction with 200, by the access log (its lines end in <pid>)."""
    lines = log.read_text(errors="replace").splitlines()
    answered = {line.rsplit("<", 1)[-1].rstrip(">") for line in lines if '/predict" 200 ' in line}
    return len(workers) > 1 and all(str(pid) in answered for pid in workers)


def test_a_postgresql_restart_under_load_fails_fast_resumes_and_records_nothing_twice(registered_digits, tmp_path):
    Tier.objects.filter(code="pro").update(
        requests_per_minute=1_000_000, requests_per_hour=1_000_000, requests_per_day=10_000_000
    )
    owner = member(organization=OrganizationFactory(tier=Tier.objects.get(code="pro")))
    organization = owner.membership.organization
    warm_key = raw_key_for(organization)  # used before the outage: every web process holds a copy of its snapshot
    cold_key = raw_key_for(organization, name="first used during the outage")  # no process has seen it
    browser = Client()
    browser.force_login(owner, backend="accounts.backends.EmailBackend")
    session = browser.cookies["sessionid"].value

    server = PostgresServer().start()
    try:
        database_url = server.copy_database(source_url=database_url_for_tests(), name="moat")
        env = {"DATABASE_URL": database_url}
        with (
            web_server(log_path=tmp_path / "web.log", workers=2, extra_env=env) as (base_url, web),
            celery_worker(log_path=tmp_path / "worker.log", extra_env=env),
        ):
            load = Load()
            load.add("predict", lambda: predict_request(base_url, warm_key, batch=2), threads=3)
            load.add("usage", lambda: api_request(base_url, "/v1/usage", warm_key), pause=0.1)
            page = urllib.request.Request(base_url + "/account/", headers={"Cookie": f"sessionid={session}"})  # noqa: S310
            load.add("page", lambda: page, pause=0.1)
            cold = Load()
            cold.add("cold key", lambda: predict_request(base_url, cold_key), pause=0.2)
            stop_beat = threading.Event()
            beat = threading.Thread(target=_beat, args=(stop_beat,))
            beat.start()
            try:
                with load:
                    wait_until(
                        lambda: all(any(o.status == 200 for o in found) for found in load.outcomes.values()),
                        timeout=20,
                        what="every kind of request answered before the fault",
                    )
                    # Every worker must hold the warm key's snapshot: a worker still booting on a busy machine when
                    # PostgreSQL goes has never seen it (a test of the promise, not of the scheduler).
                    wait_until(
                        lambda: _served_predictions(tmp_path / "web.log", child_pids(web.pid)),
                        timeout=30,
                        what="every web worker answered a prediction before the fault",
                    )
                    time.sleep(1)
                    stopping = time.monotonic()
                    server.stop()
                    down = time.monotonic()
                    _bump_registry_generation()
                    _expire_key_snapshots()
                    cold.start()  # a key no process has seen yet, from now to the end
                    time.sleep(DOWN_SECONDS)
                    server.start()
                    up = time.monotonic()
                    wait_until(
                        lambda: all(
                            first_success_after(found, up) is not None
                            for found in [*load.outcomes.values(), *cold.outcomes.values()]
                        ),
                        timeout=15,
                        what="every kind of request answered again after PostgreSQL came back",
                    )
                    time.sleep(1)
                cold.stop()
                wait_until(lambda: querylog_pending() == 0, timeout=30, what="the query log flushed to PostgreSQL")
            finally:
                cold.stop()
                stop_beat.set()
                beat.join()
        with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
            cursor.execute(
                f"SELECT request_id::text FROM {QueryLog._meta.db_table} WHERE endpoint = 'predict' AND status = 200"  # noqa: S608
            )
            stored = [row[0] for row in cursor.fetchall()]
    finally:
        server.cleanup()

    outcomes = load.all() + cold.all()
    answered = [
        o.headers["X-Request-Id"] for o in [*load.outcomes["predict"], *cold.outcomes["cold key"]] if o.status == 200
    ]
    resume = {name: first_success_after(found, up) for name, found in [*load.outcomes.items(), *cold.outcomes.items()]}
    slowest = max(o.elapsed for o in outcomes)
    print(
        f"\nPostgreSQL restart: stopped in {down - stopping:.1f} s, down {up - down:.1f} s; {len(outcomes)} requests, "
        f"statuses {dict(Counter(o.status for o in outcomes))}, "
        f"during the outage {dict(Counter(o.status for o in outcomes if stopping <= o.started <= up))}; "
        f"slowest answer {slowest:.3f} s; resumed after {', '.join(f'{k} {v:.2f} s' for k, v in resume.items())}; "
        f"predictions answered {len(answered)}, stored {len(stored)} ({len(stored) - len(set(stored))} twice)"
    )

    # No hang, no 500, no dropped connection: every answer within 5 s, and only 200 or 503.
    assert slowest < 5
    assert {o.status for o in outcomes} <= {200, 503}
    # The prediction path never needed PostgreSQL: not one prediction of a known key failed.
    assert {o.status for o in load.outcomes["predict"]} == {200}
    # What needed it answered 503 with Retry-After, in the API's shape or as the site's own page.
    for name, found in [*load.outcomes.items(), *cold.outcomes.items()]:
        if name != "predict":
            assert any(o.status == 503 for o in found if down <= o.started <= up - 0.5), name
    for outcome in (o for o in outcomes if o.status == 503):
        assert outcome.headers["Retry-After"] == "5"
        if outcome.headers["Content-Type"] == "application/json":
            assert outcome.json()["error"]["code"] == "service_unavailable"
        else:
            assert b"Briefly unavailable" in outcome.body
    # Everything resumed within 5 s of PostgreSQL answering again.
    assert max(resume.values()) < 5
    # Every answered prediction is in PostgreSQL exactly once.
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(answered)
