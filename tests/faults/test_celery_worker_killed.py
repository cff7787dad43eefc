"""A Celery worker process killed with kill -9 in the middle of real tasks (the prefork pool, as the Procfile runs
it), five times, then a task whose worker dies on every delivery.

Each task is caught mid-task deterministically: the test holds a lock the task needs (PostgreSQL's, as another
worker would), waits until the task's session is queued behind it, and kills the pool process running it. acks_late
with reject_on_worker_lost puts the message back; the next delivery meets the same lock; the test releases it. The
promise: every task completes exactly once in effect (the usage rows, the query log, the Stripe event, the usage
alert email), and a message whose worker keeps dying is parked in the admin after TASK_MAX_WORKER_LOSSES deliveries
instead of being redelivered for ever."""

import os
import signal
import time
from datetime import UTC, datetime

import psycopg2
import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from billing.dashboard.models import UsageAlert
from billing.metering.models import UsageDay
from billing.metering.services import _AGGREGATE_LOCK_CLASS
from billing.payments.models import BillingAccount, StripeEvent
from config.celery_app import app
from core.models import FailedTask
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_append, querylog_flush, querylog_pending
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.faults.load import wait_until
from tests.processes import celery_worker, child_pids, database_url_for_tests
from tests.serving.predictions.test_querylog import record_for
from tiers.models import Tier

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

UNITS = 60  # of the free tier's 100 included this month (set below): the 50% alert is due


class Lock:
    """A PostgreSQL session holding a lock in an open transaction, as a slow concurrent worker would."""

    held: list["Lock"] = []

    def __init__(self, sql: str, params: tuple = ()) -> None:
        self.connection = psycopg2.connect(database_url_for_tests())
        Lock.held.append(self)
        self.connection.cursor().execute(sql, params)

    def release(self) -> None:
        if not self.connection.closed:
            self.connection.rollback()
            self.connection.close()

    @classmethod
    def release_all(cls) -> None:
        while cls.held:
            cls.held.pop().release()


class Killer:
    """Finds the session of a task queued behind a Lock and kills the pool process that runs the task."""

    def __init__(self, worker) -> None:
        self.worker = worker
        self.observer = psycopg2.connect(database_url_for_tests())
        self.observer.autocommit = True
        self.seen: set[int] = set()
        self.kills = 0

    def _waiting(self) -> set[int]:
        with self.observer.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return {pid for (pid,) in cursor.fetchall()}

    def wait_for_a_delivery(self, what: str) -> None:
        """Until a session not seen before is queued behind the lock: a delivery of the task, caught mid-task."""
        wait_until(lambda: self._waiting() - self.seen, timeout=30, what=f"{what} waiting on the lock")
        self.seen |= self._waiting()

    def kill(self) -> None:
        (child,) = child_pids(self.worker.pid)  # --concurrency 1: the one pool process, running the task
        os.kill(child, signal.SIGKILL)
        self.kills += 1
        wait_until(lambda: child_pids(self.worker.pid) not in ([], [child]), timeout=30, what="a new pool process")

    def close(self) -> None:
        self.observer.close()


def test_workers_killed_mid_task_lose_and_repeat_nothing_and_a_task_that_always_kills_its_worker_is_parked(
    tmp_path, settings
):
    Tier.objects.filter(code="free").update(monthly_included_requests=100)
    organization = member(organization=OrganizationFactory(tier=Tier.objects.get(code="free"))).membership.organization
    raw_key_for(organization)
    api_key = ApiKey.objects.get(organization=organization)
    for _ in range(UNITS // 2):  # two inputs per record
        querylog_append(record_for(api_key))
    querylog_flush()
    late_records = [record_for(api_key, endpoint="models", inputs=b"", labels=[], clean_labels=[]) for _ in range(25)]
    for record in late_records:  # recorded, not yet flushed: the flush task's work
        querylog_append(record)
    BillingAccount.objects.create(organization=organization, stripe_customer_id="cus_KilledWorker01")
    event = StripeEvent.objects.create(
        event_id="evt_killed_worker",
        type="checkout.session.completed",
        stripe_created=timezone.now(),
        payload={
            "id": "evt_killed_worker",
            "type": "checkout.session.completed",
            "data": {
                "object": {"object": "checkout.session", "mode": "subscription", "customer": "cus_KilledWorker01"}
            },
        },
    )
    today = datetime.now(UTC).date()
    outbox = tmp_path / "mail"
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "TASK_MAX_WORKER_LOSSES": "3",
        # One pool process: a killed flusher's records are taken over by the next delivery at once.
        "QUERY_LOG_CLAIM_IDLE_SECONDS": "0",
    }
    with celery_worker(log_path=tmp_path / "worker.log", extra_env=env, concurrency=1) as worker:
        started = time.monotonic()
        killer = Killer(worker)
        try:
            # 1. The usage aggregation, killed while it waits for the day's lock: the rows are right, once.
            lock = Lock("SELECT pg_advisory_xact_lock(%s, %s)", (_AGGREGATE_LOCK_CLASS, today.toordinal()))
            app.send_task("metering.aggregate_usage")
            killer.wait_for_a_delivery("the aggregation")
            killer.kill()
            killer.wait_for_a_delivery("the aggregation, redelivered")
            lock.release()
            wait_until(
                lambda: UsageDay.objects.filter(organization=organization, day=today, units=UNITS).exists(),
                timeout=30,
                what="the usage rows",
            )

            # 2. The query-log flush, killed after it read the records and before it stored them.
            lock = Lock(f"LOCK TABLE {QueryLog._meta.db_table} IN SHARE MODE")
            app.send_task("predictions.flush_query_log")
            killer.wait_for_a_delivery("the flush")
            killer.kill()
            killer.wait_for_a_delivery("the flush, redelivered")
            lock.release()
            wait_until(lambda: querylog_pending() == 0, timeout=30, what="the query log flushed")

            # 3. The usage alert sweep, killed while another sweep is inserting the same alert. (Before the Stripe
            # event, which moves the organization to pro and its 60 units under 50%.)
            period = today.strftime("%Y%m")
            lock = Lock(
                f"INSERT INTO {UsageAlert._meta.db_table} (organization_id, period, threshold, sent_at) "  # noqa: S608
                "VALUES (%s, %s, 50, now())",
                (organization.pk, period),
            )
            app.send_task("billing_dashboard.send_usage_alerts")
            killer.wait_for_a_delivery("the alert sweep")
            killer.kill()
            killer.wait_for_a_delivery("the alert sweep, redelivered")
            lock.release()  # the other sweep rolls back: this one must send the alert
            wait_until(lambda: UsageAlert.objects.filter(organization=organization).exists(), timeout=30, what="alert")

            # 4. A Stripe event, killed twice while applying it (the account row is locked by another worker).
            lock = Lock(f"SELECT 1 FROM {BillingAccount._meta.db_table} FOR UPDATE")  # noqa: S608 - a model's table
            app.send_task("payments.process_stripe_event", args=[event.pk])
            killer.wait_for_a_delivery("the Stripe event")
            killer.kill()
            killer.wait_for_a_delivery("the Stripe event, redelivered")
            killer.kill()
            killer.wait_for_a_delivery("the Stripe event, redelivered again")
            lock.release()
            wait_until(
                lambda: StripeEvent.objects.filter(pk=event.pk, status="processed").exists(),
                timeout=30,
                what="the Stripe event processed",
            )
            five_kills = time.monotonic() - started
            assert killer.kills == 5

            # 5. A task whose worker dies on every delivery: parked after three, never run a fourth time.
            lock = Lock("SELECT pg_advisory_xact_lock(%s, %s)", (_AGGREGATE_LOCK_CLASS, today.toordinal()))
            app.send_task("metering.aggregate_usage", task_id="always-killed")
            for delivery in range(3):
                killer.wait_for_a_delivery(f"the doomed aggregation, delivery {delivery + 1}")
                killer.kill()
            wait_until(lambda: FailedTask.objects.filter(task_id="always-killed").exists(), timeout=30, what="parked")
            time.sleep(1)
            assert not killer._waiting() - killer.seen  # no fourth run
            lock.release()
        finally:
            Lock.release_all()
            killer.close()
    log = (tmp_path / "worker.log").read_text()

    print(
        f"\nCelery worker killed: {killer.kills} kills of the pool process; the five mid-task kills took "
        f"{five_kills:.1f} s; parked: {FailedTask.objects.values_list('task_name', 'reason', 'attempts').get()}"
    )
    # Exactly once in effect.
    usage = UsageDay.objects.get(organization=organization, day=today)
    assert (usage.requests, usage.units) == (UNITS // 2, UNITS)
    stored = [str(r) for r in QueryLog.objects.filter(endpoint="models").values_list("request_id", flat=True)]
    assert sorted(stored) == sorted(r.request_id for r in late_records)
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 3)  # three deliveries claimed it, one applied it
    organization.refresh_from_db()
    assert (organization.tier.code, organization.billing_state) == ("pro", "active")
    assert list(UsageAlert.objects.filter(organization=organization).values_list("threshold", flat=True)) == [50]
    assert len(list(outbox.iterdir())) == 1  # one email
    # Bounded and visible: three deliveries, then parked in the admin.
    parked = FailedTask.objects.get()
    assert (parked.task_id, parked.task_name, parked.reason, parked.attempts) == (
        "always-killed",
        "metering.aggregate_usage",
        "worker_lost",
        3,
    )
    assert log.count("WorkerLostError") >= killer.kills
