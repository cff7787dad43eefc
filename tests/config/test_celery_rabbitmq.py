"""Celery on RabbitMQ (an amqp:// CELERY_BROKER_URL) keeps the guarantees it has on Redis.

A private RabbitMQ node (tests/rabbitmq.py, RabbitMQServer; never the machine's) is started once for the session.
Real worker and beat processes run on it: tasks enqueued on commit run, the beat schedule runs, only JSON is
accepted. The worker-loss guarantees are proved on both brokers by the same test: a worker killed mid-task
redelivers an idempotent (acks_late) task, which then completes once, never a non-idempotent one, and parks a
message whose worker died TASK_MAX_WORKER_LOSSES times (core.FailedTask, in the admin) instead of running it again.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu import Connection, pools

from accounts.models import User
from accounts.services import user_signup
from apikeys.models import ApiKey
from billing.metering.models import UsageDay
from billing.metering.services import _AGGREGATE_LOCK_CLASS
from billing.payments.models import BillingAccount, StripeEvent
from billing.payments.tasks import _backoff
from config.celery_app import app
from config.settings import RABBITMQ_CONSUMER_TIMEOUT_SECONDS, celery_transport_settings
from core.models import FailedTask
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_append, querylog_flush, querylog_pending
from tests.factories import OrganizationFactory, UserFactory, member, raw_key_for
from tests.faults.load import wait_until
from tests.faults.test_celery_worker_killed import Lock
from tests.processes import (
    celery_beat,
    celery_worker,
    child_pids,
    database_url_for_tests,
)
from tests.serving.predictions.test_querylog import record_for

# Tasks that must not run twice (an email twice is a visible fault): acked on receipt, never redelivered.
NOT_IDEMPOTENT = {"accounts.send_verification_email", "accounts.send_invitation_email", "abuse.send_enforcement_email"}


@contextmanager
def publishing_to(broker_url: str) -> Iterator[dict[str, str]]:
    """This process's Celery app publishing to `broker_url` with the settings that scheme gets (not eagerly, as
    the web processes do); yields the environment of worker and beat processes on the same broker."""

    def reconnect() -> None:
        pools.reset()  # kombu's pools are shared by broker URL: closed and forgotten, they are made anew
        app._pool = None
        app.__dict__.pop("amqp", None)  # its queues and producer pool belong to the previous broker

    changed = {"broker_url": broker_url, "task_always_eager": False, **celery_transport_settings(broker_url)}
    saved = {name: app.conf[name] for name in changed}
    app.conf.update(changed)
    reconnect()
    try:
        yield {"CELERY_BROKER_URL": broker_url}
    finally:
        app.conf.update(saved)
        reconnect()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request) -> Iterator[str]:
    """Each broker in turn, with no message left from another test (the Redis one is flushed by _clean_redis)."""
    if request.param == "redis":
        yield settings.CELERY_BROKER_URL
        return
    server = request.getfixturevalue("rabbitmq")
    server.purge("celery")
    yield server.url
    server.purge("celery")


def _moat_tasks() -> dict:
    app.loader.import_default_modules()  # every app's tasks module, as a worker imports them
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def _an_organization_with_a_key() -> ApiKey:
    organization = member(organization=OrganizationFactory(name="Queued")).membership.organization
    raw_key_for(organization)
    return ApiKey.objects.get(organization=organization)


# --- The settings ---------------------------------------------------------------------------------------------
def test_the_transport_settings_follow_the_broker_url_scheme():
    redis = celery_transport_settings("redis://127.0.0.1:6379/0")
    assert redis == {"broker_transport_options": {"visibility_timeout": 3600}, "task_queues": None}
    for url in ("amqp://guest:guest@127.0.0.1:5672//", "amqps://moat:secret@mq.internal:5671/moat"):
        rabbit = celery_transport_settings(url)
        assert rabbit["broker_transport_options"] == {"confirm_publish": True}
        (queue,) = rabbit["task_queues"]
        assert (queue.name, queue.routing_key, queue.durable, queue.exchange.name, queue.exchange.durable) == (
            "celery",
            "celery",
            True,
            "celery",
            True,
        )
        assert queue.consumer_arguments == {"x-consumer-timeout": RABBITMQ_CONSUMER_TIMEOUT_SECONDS * 1000}
    assert settings.CELERY_TASK_DEFAULT_DELIVERY_MODE == "persistent"
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


def test_only_idempotent_tasks_are_acknowledged_late_and_requeued_when_their_worker_dies():
    tasks = _moat_tasks()
    late = {name for name, task in tasks.items() if task.acks_late}
    assert {name for name, task in tasks.items() if task.reject_on_worker_lost} == late
    assert set(tasks) - late == NOT_IDEMPOTENT


def test_rabbitmqs_consumer_timeout_outlasts_the_longest_wait_for_an_acknowledgement():
    """RabbitMQ closes the channel of a delivery unacknowledged for longer (and requeues all it holds): a message
    may wait out its countdown in the worker (the longest retry backoff), then for a pool process behind the
    longest task, then run its own time limit."""
    tasks = _moat_tasks().values()
    longest_run = max(task.time_limit or settings.CELERY_TASK_TIME_LIMIT for task in tasks)
    longest_countdown = max(
        _backoff(10**3),  # the Stripe tasks' own backoff, at its cap
        # autoretry_for with retry_backoff: up to the task's retry_backoff_max (Celery's default: 600 s)
        *(getattr(task, "retry_backoff_max", 600) for task in tasks if getattr(task, "retry_backoff", False)),
    )
    assert longest_countdown + 2 * longest_run < RABBITMQ_CONSUMER_TIMEOUT_SECONDS


# --- A real worker and beat on RabbitMQ -----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_on_rabbitmq_tasks_enqueued_on_commit_and_beats_schedule_run_and_only_json_is_accepted(rabbitmq, tmp_path):
    api_key = _an_organization_with_a_key()
    records = [record_for(api_key) for _ in range(20)]
    for record in records:  # answered, not yet flushed: beat's flush moves them
        querylog_append(record)
    unverified = UserFactory(email="pickled@example.com", email_verified_at=None)
    outbox, worker_log, beat_log = tmp_path / "mail", tmp_path / "worker.log", tmp_path / "beat.log"
    env = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(outbox)}

    rabbitmq.purge("celery")
    with publishing_to(rabbitmq.url) as broker_env:
        # A task message in pickle (as an attacker able to publish would send it) is first in the queue.
        with Connection(rabbitmq.url) as connection:
            connection.Producer().publish(
                ([unverified.pk], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}),
                serializer="pickle",
                exchange="celery",
                routing_key="celery",
                headers={"lang": "py", "task": "accounts.send_verification_email", "id": "pickled", "retries": 0},
                declare=app.amqp.queues.values(),
                delivery_mode="persistent",
            )
        # Then a sign-up, whose verification email is enqueued on commit, as the app does.
        with transaction.atomic():
            user_signup(
                email="signed-up@example.com",
                password="a long enough password",
                organization_name="Rabbit",
                ip_address="203.0.113.9",
                user_agent="tests",
            )
        with (
            celery_worker(log_path=worker_log, extra_env={**env, **broker_env}, concurrency=1),
            celery_beat(log_path=beat_log, extra_env=broker_env),
        ):
            wait_until(lambda: outbox.exists() and any(outbox.iterdir()), timeout=30, what="the verification email")
            wait_until(lambda: querylog_pending() == 0, timeout=30, what="beat's flush of the query log")
            time.sleep(0.5)  # no second email may follow

    (email,) = [path.read_text() for path in outbox.iterdir()]
    assert "To: signed-up@example.com" in email
    stored = [str(r) for r in QueryLog.objects.values_list("request_id", flat=True)]
    assert sorted(stored) == sorted(record.request_id for record in records)
    log = worker_log.read_text()
    assert f"Connected to amqp://guest:**@127.0.0.1:{rabbitmq.port}//" in log
    # Rejected without a requeue (so refused once: it is gone) and never run.
    assert log.count("Received invalid task message: Refusing to deserialize untrusted content of type pickle") == 1
    assert "Task accounts.send_verification_email[pickled] received" not in log
    assert "Sending due task flush-query-log (predictions.flush_query_log)" in beat_log.read_text()
    assert "Task predictions.flush_query_log[" in log


# --- Worker loss, on each broker ------------------------------------------------------------------------------
def _a_stripe_event_of(organization) -> StripeEvent:
    BillingAccount.objects.create(organization=organization, stripe_customer_id="cus_KilledWorker02")
    return StripeEvent.objects.create(
        event_id="evt_killed_worker_2",
        type="checkout.session.completed",
        stripe_created=timezone.now(),
        payload={
            "id": "evt_killed_worker_2",
            "type": "checkout.session.completed",
            "data": {
                "object": {"object": "checkout.session", "mode": "subscription", "customer": "cus_KilledWorker02"}
            },
        },
    )


def _sessions_waiting_on_a_lock(observer) -> dict[int, str]:
    """The PostgreSQL sessions of this database queued behind a lock: backend pid -> the statement waiting."""
    with observer.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return dict(cursor.fetchall())


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


def _peers(inodes: set[str]) -> set[str]:
    """The inodes of the other ends of these sockets: a Unix socket's peer as `ss -x` reports it (the embedded
    PostgreSQL's), a TCP connection's by its ports in /proc/net/tcp (a PostgreSQL on loopback)."""
    peers = set()
    listing = subprocess.run(["ss", "-xn"], capture_output=True, text=True, check=True).stdout  # noqa: S607
    for fields in (line.split() for line in listing.splitlines()[1:]):
        if len(fields) >= 8 and fields[5] in inodes:
            peers.add(fields[7])
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        rows += [line.split() for line in Path(table).read_text().splitlines()[1:]]
    ends = {row[9]: (row[1], row[2]) for row in rows}
    for inode in inodes & set(ends):
        local, remote = ends[inode]
        peers |= {row[9] for row in rows if (row[1], row[2]) == (remote, local)}
    return peers


def _client_process_of(backend_pid: int, pids: list[int]) -> int:
    """Which of these processes is the client of this PostgreSQL backend (by their sockets' other ends, in /proc)."""
    peers = _peers(_socket_inodes(backend_pid))
    for pid in pids:
        if _socket_inodes(pid) & peers:
            return pid
    raise AssertionError(f"no process of {pids} is the client of PostgreSQL backend {backend_pid}")


@pytest.mark.faults
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_redelivers_only_idempotent_tasks_and_parks_a_message_that_keeps_killing_it(
    broker_url, tmp_path
):
    """Three tasks are caught mid-task at once, each waiting on a lock the test holds (three pool processes, as in
    tests/faults/test_celery_worker_killed.py with one), and their pool processes are killed with kill -9. The worker
    notices a dead pool process on its next 5 s pool timer, so the test kills as few times as it can."""
    api_key = _an_organization_with_a_key()
    for _ in range(10):
        querylog_append(record_for(api_key))
    querylog_flush()
    unverified = UserFactory(email="unverified@example.com", email_verified_at=None)
    event = _a_stripe_event_of(api_key.organization)
    today = datetime.now(UTC).date()
    outbox, worker_log = tmp_path / "mail", tmp_path / "worker.log"
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "TASK_MAX_WORKER_LOSSES": "2",
    }
    users = Lock(f"LOCK TABLE {User._meta.db_table} IN ACCESS EXCLUSIVE MODE")  # the email's first query waits
    day = Lock("SELECT pg_advisory_xact_lock(%s, %s)", (_AGGREGATE_LOCK_CLASS, today.toordinal()))
    Lock(f"SELECT 1 FROM {BillingAccount._meta.db_table} FOR UPDATE")  # noqa: S608 - the Stripe event waits
    observer = psycopg2.connect(database_url_for_tests())
    observer.autocommit = True
    try:
        with publishing_to(broker_url) as broker_env:
            # Not idempotent (an email, acknowledged on receipt); idempotent (acks_late); and one that will always
            # be killed (acks_late), each to a pool process of its own.
            app.send_task("accounts.send_verification_email", args=[unverified.pk], task_id="not-idempotent")
            app.send_task("metering.aggregate_usage", task_id="idempotent")
            app.send_task("payments.process_stripe_event", args=[event.pk], task_id="always-killed")
            with celery_worker(log_path=worker_log, extra_env={**env, **broker_env}, concurrency=3) as worker:
                # A killed task's session stays queued behind its lock (PostgreSQL notices the lost client only
                # once granted): each delivery is a session not seen before.
                seen: set[int] = set()

                def deliveries() -> dict[int, str]:
                    return {pid: q for pid, q in _sessions_waiting_on_a_lock(observer).items() if pid not in seen}

                wait_until(lambda: len(deliveries()) == 3, timeout=30, what="the three tasks waiting")
                seen |= set(deliveries())
                for pid in child_pids(worker.pid):
                    os.kill(pid, signal.SIGKILL)
                users.release()

                # The acks_late ones are delivered again (the email is not); the one that always dies is killed on
                # its second delivery too.
                wait_until(lambda: len(deliveries()) == 2, timeout=30, what="the two acks_late tasks redelivered")
                redelivered = deliveries()
                seen |= set(redelivered)
                # (The Stripe event's second delivery waits on the event row its killed first delivery still holds.)
                (aggregation,) = [pid for pid, query in redelivered.items() if "pg_advisory_xact_lock" in query]
                (doomed,) = set(redelivered) - {aggregation}
                os.kill(_client_process_of(doomed, child_pids(worker.pid)), signal.SIGKILL)

                # Its third delivery parks it: not run again. The idempotent one then completes.
                wait_until(
                    lambda: FailedTask.objects.filter(task_id="always-killed").exists(), timeout=30, what="parked"
                )
                day.release()
                wait_until(lambda: UsageDay.objects.filter(day=today).exists(), timeout=30, what="the usage rows")
                assert not deliveries()
                time.sleep(0.5)  # nothing more may run
    finally:
        Lock.release_all()
        observer.close()
    log = worker_log.read_text()

    assert not outbox.exists() or not any(outbox.iterdir())  # the lost email was not sent by a second run
    assert log.count("Task accounts.send_verification_email[not-idempotent] received") == 1
    assert log.count("Task metering.aggregate_usage[idempotent] received") == 2
    usage = UsageDay.objects.get(day=today)
    assert (usage.organization_id, usage.requests, usage.units) == (api_key.organization_id, 10, 20)
    assert log.count("Task payments.process_stripe_event[always-killed] received") == 3  # the third one parked it
    parked = FailedTask.objects.get()
    assert (parked.task_id, parked.task_name, parked.reason, parked.attempts, parked.args) == (
        "always-killed",
        "payments.process_stripe_event",
        "worker_lost",
        2,
        [event.pk],
    )
    event.refresh_from_db()
    assert event.status != "processed"
