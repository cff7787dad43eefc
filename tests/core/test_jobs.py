"""Every task's base (core.jobs.MoatTask): a message whose worker keeps dying is parked after a bounded number of
deliveries; a task that fails after its retries is parked with its error; staff see both in the admin and can run
one again. (The same with a real worker killed for real: tests/faults/test_celery_worker_killed.py.)"""

import pytest

from billing.payments.tasks import MAX_RETRIES, create_stripe_customer
from config.celery_app import app
from core.jobs import MoatTask
from core.models import FailedTask
from core.redis import redis_client
from tests.billing.payments.conftest import fake_stripe  # noqa: F401 - the fixture
from tests.conftest import signed_in
from tests.factories import UserFactory, raw_key_for

pytestmark = pytest.mark.django_db


def deliver(task, *args, task_id: str):
    """One delivery of a message as a worker runs it, up to the moment the task body returns; a worker killed
    mid-task never reaches `after_return`, which is what a call without it stands for."""
    task.push_request(id=task_id, is_eager=False, retries=0)
    try:
        return task(*args)
    finally:
        task.pop_request()


def test_every_task_has_the_base():
    assert all(isinstance(task, MoatTask) for name, task in app.tasks.items() if not name.startswith("celery."))


def test_a_message_whose_worker_died_three_times_is_parked_not_run_again(settings, organization, monkeypatch):
    from billing.dashboard import tasks

    settings.TASK_MAX_WORKER_LOSSES = 3
    runs = []
    monkeypatch.setattr(tasks, "usage_alerts_send", lambda **kwargs: runs.append(kwargs) or 0)
    task = tasks.send_usage_alerts
    for _ in range(3):
        deliver(task, task_id="msg-1")  # each of these workers died before the task returned

    assert deliver(task, task_id="msg-1") is None
    assert len(runs) == 3  # the fourth delivery did not run it
    parked = FailedTask.objects.get()
    assert (parked.task_id, parked.task_name, parked.reason, parked.attempts, parked.args, parked.resolved_at) == (
        "msg-1",
        "billing_dashboard.send_usage_alerts",
        "worker_lost",
        3,
        [],
        None,
    )
    assert "died on each of its 3 deliveries" in parked.error
    assert redis_client().get("moat:task:deliveries:msg-1") is None


def test_a_run_that_returns_resets_the_count(settings, monkeypatch):
    from billing.dashboard import tasks

    monkeypatch.setattr(tasks, "usage_alerts_send", lambda **kwargs: 0)
    task = tasks.send_usage_alerts
    deliver(task, task_id="msg-2")
    deliver(task, task_id="msg-2")
    task.after_return("SUCCESS", 0, "msg-2", (), {}, None)  # the second delivery returned
    for _ in range(3):
        deliver(task, task_id="msg-2")
    assert FailedTask.objects.count() == 0


def test_a_task_that_keeps_failing_is_retried_a_bounded_number_of_times_then_parked(
    fake_stripe,  # noqa: F811
    organization,
    monkeypatch,
):
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)  # as in a worker: the retry does not raise
    for _ in range(MAX_RETRIES + 5):
        fake_stripe.fail_next(status=500, message="Stripe is down")

    # apply() runs the task and each of its retries at once (the worker waits out the backoff in between).
    result = create_stripe_customer.apply(args=[organization.pk], task_id="msg-5")

    assert result.state == "FAILURE"
    calls = fake_stripe.calls("POST", "/v1/customers")
    assert len(calls) == MAX_RETRIES + 1  # the first run and MAX_RETRIES retries, then it stops
    assert {call.idempotency_key for call in calls} == {f"moat-customer-{organization.pk}"}
    parked = FailedTask.objects.get()
    assert (parked.task_id, parked.task_name, parked.reason, parked.attempts, parked.args) == (
        "msg-5",
        "payments.create_stripe_customer",
        "failed",
        MAX_RETRIES + 1,
        [organization.pk],
    )
    assert "Stripe: Stripe is down" in parked.error.splitlines()[0]


def test_staff_see_parked_tasks_and_run_one_again_once(organization, django_capture_on_commit_callbacks):
    from billing.metering.models import UsageDay
    from serving.predictions.querylog import querylog_append, querylog_flush
    from tests.serving.predictions.test_querylog import record_for

    raw_key_for(organization)
    querylog_append(record_for(organization.api_keys.get()))
    querylog_flush()
    parked = FailedTask.objects.create(
        task_id="msg-3", task_name="metering.aggregate_usage", reason="worker_lost", attempts=3
    )
    staff = signed_in(UserFactory(is_staff=True, is_superuser=True, email="ops@example.com"))
    assert staff.get("/admin/core/failedtask/").status_code == 200
    assert b"metering.aggregate_usage" in staff.get(f"/admin/core/failedtask/{parked.pk}/change/").content

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(2):  # a double click
            staff.post("/admin/core/failedtask/", {"action": "run_again", "_selected_action": [parked.pk]})

    assert len(callbacks) == 1  # enqueued once (and run: the tests run tasks eagerly)
    assert UsageDay.objects.get(organization=organization).units == 2
    parked.refresh_from_db()
    assert parked.resolved_by == "admin:ops@example.com" and parked.resolved_at is not None and parked.rerun_task_id


def test_staff_without_the_permission_cannot_run_or_dismiss(organization):
    parked = FailedTask.objects.create(
        task_id="msg-4", task_name="metering.aggregate_usage", reason="failed", attempts=1
    )
    viewer = UserFactory(is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_failedtask"))
    client = signed_in(viewer)
    assert client.get("/admin/core/failedtask/").status_code == 200
    client.post("/admin/core/failedtask/", {"action": "dismiss", "_selected_action": [parked.pk]})
    parked.refresh_from_db()
    assert parked.resolved_at is None
