"""POST /billing/webhooks/stripe/: signature checks, storage once, processing once, reordering, each event's effect."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import BillingState
from billing.payments.models import BillingAccount, Invoice, StripeEvent, StripeEventStatus
from billing.payments.tasks import process_stripe_event
from tests.billing.payments.conftest import signed, stripe_event

URL = "/billing/webhooks/stripe/"
CUSTOMER = "cus_TestOrg0000001"
SUBSCRIPTION = "sub_1TestSubscription"


@pytest.fixture
def account(fake_stripe, organization) -> BillingAccount:
    return BillingAccount.objects.create(organization=organization, stripe_customer_id=CUSTOMER)


def post(body: bytes, header: str | None):
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return Client().post(URL, data=body, content_type="application/json", **extra)


def deliver(django_capture_on_commit_callbacks, event: dict, **kwargs):
    body, header = signed(event, **kwargs)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(body, header)
    return response


def checkout_completed(**extra) -> dict:
    return {
        "id": "cs_test_a1b2c3",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "customer": CUSTOMER,
        "subscription": SUBSCRIPTION,
        **extra,
    }


def subscription(status: str) -> dict:
    return {
        "id": SUBSCRIPTION,
        "object": "subscription",
        "customer": CUSTOMER,
        "status": status,
        "items": {
            "object": "list",
            "data": [{"id": "si_1", "object": "subscription_item", "current_period_end": 1_800_000_000}],
        },
    }


def invoice(status: str, *, invoice_id: str = "in_1TestInvoice", paid: int = 0) -> dict:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": CUSTOMER,
        "subscription": SUBSCRIPTION,
        "number": "MOAT-0001",
        "amount_due": 4900,
        "amount_paid": paid,
        "currency": "usd",
        "status": status,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_in_1",
        "created": 1_790_000_000,
        "lines": {"object": "list", "data": [{"period": {"start": 1_790_000_000, "end": 1_792_600_000}}]},
    }


# --- Signatures ---------------------------------------------------------------------------------------------------


def test_valid_signature_stores_the_event_and_answers_200(account, django_capture_on_commit_callbacks):
    event = stripe_event("checkout.session.completed", checkout_completed(), event_id="evt_valid")
    response = deliver(django_capture_on_commit_callbacks, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    row = StripeEvent.objects.get()
    assert (row.event_id, row.type, row.status, row.attempts) == (
        "evt_valid",
        "checkout.session.completed",
        "processed",
        1,
    )
    assert row.stripe_created.timestamp() == event["created"]


@pytest.mark.parametrize(
    "header_for",
    [
        pytest.param(lambda body, ts: None, id="missing header"),
        pytest.param(lambda body, ts: "", id="empty header"),
        pytest.param(lambda body, ts: f"t={ts},v1=" + "0" * 64, id="forged signature"),
        pytest.param(lambda body, ts: signed_header(body, ts, secret="whsec_someone_else"), id="wrong secret"),
        pytest.param(lambda body, ts: signed_header(body, ts - 301), id="stale (301 s old)"),
        pytest.param(lambda body, ts: signed_header(body, ts + 301), id="future-dated (301 s ahead)"),
        pytest.param(lambda body, ts: "garbage", id="malformed header"),
    ],
)
def test_bad_signatures_answer_400_and_store_nothing(account, header_for, django_capture_on_commit_callbacks):
    event = stripe_event("customer.subscription.deleted", subscription("canceled"))
    body, _ = signed(event)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(body, header_for(body, int(time.time())))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert StripeEvent.objects.count() == 0
    assert callbacks == []
    account.organization.refresh_from_db()
    assert account.organization.billing_state == BillingState.NONE


def signed_header(body: bytes, timestamp: int, secret: str | None = None) -> str:
    import stripe

    from tests.billing.payments.conftest import WEBHOOK_SECRET

    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret or WEBHOOK_SECRET, timestamp=timestamp
    )


def test_timestamps_just_inside_the_tolerance_are_accepted(account, django_capture_on_commit_callbacks):
    now = int(time.time())
    for i, ts in enumerate([now - 290, now + 290]):
        event = stripe_event("invoice.paid", invoice("paid", paid=4900), event_id=f"evt_edge_{i}")
        assert deliver(django_capture_on_commit_callbacks, event, timestamp=ts).status_code == 200
    assert StripeEvent.objects.count() == 2


def test_a_signed_body_that_is_not_an_event_answers_400(account):
    body, header = signed({"hello": "world"})
    response = post(body, header)
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_get_is_not_allowed(account):
    assert Client().get(URL).status_code == 405


# --- Exactly once -------------------------------------------------------------------------------------------------


def test_a_duplicate_delivery_is_stored_once_and_applied_once(account, django_capture_on_commit_callbacks):
    event = stripe_event("invoice.payment_failed", invoice("open"), event_id="evt_dup")
    first = deliver(django_capture_on_commit_callbacks, event)
    grace_until = BillingAccount.objects.get().grace_until
    second = deliver(django_capture_on_commit_callbacks, event)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"received": True, "duplicate": True}
    row = StripeEvent.objects.get()
    assert (row.status, row.attempts) == ("processed", 1)
    assert BillingAccount.objects.get().grace_until == grace_until
    assert Invoice.objects.count() == 1


def test_the_task_does_not_reprocess_a_processed_event(account, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, stripe_event("checkout.session.completed", checkout_completed()))
    row = StripeEvent.objects.get()
    assert process_stripe_event(row.pk) is None
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("processed", 1)


def test_the_task_exits_cleanly_when_the_row_is_gone(db):
    assert process_stripe_event(987654) is None


def test_a_failed_event_records_the_error_and_is_claimable_again(
    account, django_capture_on_commit_callbacks, monkeypatch
):
    from billing.payments import services

    broken = {"yes": True}
    real = services._HANDLERS["invoice.paid"]

    def flaky(account, organization, obj):
        if broken["yes"]:
            raise RuntimeError("handler exploded")
        real(account, organization, obj)

    monkeypatch.setitem(services._HANDLERS, "invoice.paid", flaky)
    deliver(django_capture_on_commit_callbacks, stripe_event("invoice.paid", invoice("paid", paid=4900)))
    row = StripeEvent.objects.get()
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error == "RuntimeError: handler exploded"
    assert Invoice.objects.count() == 0  # the effect rolled back with the failure
    broken["yes"] = False
    assert process_stripe_event(row.pk) == "processed"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("processed", 2)
    assert account.organization.__class__.objects.get(pk=account.organization_id).billing_state == BillingState.ACTIVE


# --- Reordering -----------------------------------------------------------------------------------------------


def test_an_update_older_than_an_applied_deletion_is_ignored(account, django_capture_on_commit_callbacks):
    now = int(time.time())
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("checkout.session.completed", checkout_completed(), created=now - 100),
    )
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event(
            "customer.subscription.deleted", subscription("canceled"), created=now - 10, event_id="evt_deleted"
        ),
    )
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event(
            "customer.subscription.updated", subscription("active"), created=now - 50, event_id="evt_late_update"
        ),
    )
    late = StripeEvent.objects.get(event_id="evt_late_update")
    assert late.status == StripeEventStatus.IGNORED
    assert late.error == "Older than the last applied event of this account."
    account.organization.refresh_from_db()
    assert (account.organization.tier.code, account.organization.billing_state) == ("free", BillingState.CANCELED)
    account.refresh_from_db()
    assert account.subscription_status == "canceled"
    assert account.last_subscription_event_at.timestamp() == now - 10


# --- Each event's effect --------------------------------------------------------------------------------------


def test_checkout_completed_moves_the_organization_to_pro(account, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, stripe_event("checkout.session.completed", checkout_completed()))
    account.refresh_from_db()
    org = account.organization
    org.refresh_from_db()
    assert (org.tier.code, org.billing_state) == ("pro", BillingState.ACTIVE)
    assert (account.stripe_customer_id, account.subscription_id, account.subscription_status) == (
        CUSTOMER,
        SUBSCRIPTION,
        "active",
    )


def test_checkout_completed_finds_the_organization_by_client_reference_id(
    fake_stripe, organization, django_capture_on_commit_callbacks
):
    obj = checkout_completed(customer="cus_NewCustomer01", client_reference_id=str(organization.pk))
    deliver(django_capture_on_commit_callbacks, stripe_event("checkout.session.completed", obj))
    organization.refresh_from_db()
    assert organization.tier.code == "pro"
    assert BillingAccount.objects.get(organization=organization).stripe_customer_id == "cus_NewCustomer01"


@pytest.mark.parametrize(
    ("status", "billing_state"),
    [
        ("active", "active"),
        ("trialing", "active"),
        ("past_due", "past_due"),
        ("unpaid", "past_due"),
        ("canceled", "canceled"),
    ],
)
def test_subscription_updated_maps_the_status_to_the_billing_state(
    account, status, billing_state, django_capture_on_commit_callbacks
):
    deliver(django_capture_on_commit_callbacks, stripe_event("customer.subscription.updated", subscription(status)))
    account.refresh_from_db()
    assert account.organization.billing_state == billing_state
    assert account.subscription_status == status
    assert account.current_period_end.timestamp() == 1_800_000_000


def test_subscription_deleted_moves_the_organization_to_free(account, django_capture_on_commit_callbacks):
    now = int(time.time())
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("checkout.session.completed", checkout_completed(), created=now - 5),
    )
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("customer.subscription.deleted", subscription("canceled"), created=now),
    )
    account.organization.refresh_from_db()
    assert (account.organization.tier.code, account.organization.billing_state) == ("free", BillingState.CANCELED)


def test_payment_failed_starts_a_grace_period_and_records_the_invoice(
    account, settings, django_capture_on_commit_callbacks
):
    settings.BILLING_GRACE_PERIOD_DAYS = 7
    before = timezone.now()
    deliver(django_capture_on_commit_callbacks, stripe_event("invoice.payment_failed", invoice("open")))
    account.refresh_from_db()
    assert account.organization.billing_state == BillingState.PAST_DUE
    assert before + timedelta(days=7) <= account.grace_until <= timezone.now() + timedelta(days=7)
    inv = Invoice.objects.get()
    assert (
        inv.organization_id,
        inv.stripe_invoice_id,
        inv.number,
        inv.amount_due,
        inv.amount_paid,
        inv.currency,
        inv.status,
    ) == (account.organization_id, "in_1TestInvoice", "MOAT-0001", 4900, 0, "usd", "open")
    assert inv.period_start.timestamp() == 1_790_000_000


def test_invoice_paid_clears_the_grace_period_and_marks_the_invoice_paid(account, django_capture_on_commit_callbacks):
    now = int(time.time())
    deliver(
        django_capture_on_commit_callbacks, stripe_event("invoice.payment_failed", invoice("open"), created=now - 60)
    )
    deliver(django_capture_on_commit_callbacks, stripe_event("invoice.paid", invoice("paid", paid=4900), created=now))
    account.refresh_from_db()
    assert account.grace_until is None
    assert account.organization.billing_state == BillingState.ACTIVE
    inv = Invoice.objects.get()
    assert (inv.status, inv.amount_paid) == ("paid", 4900)


def test_a_late_payment_failure_does_not_regress_a_paid_invoice(account, django_capture_on_commit_callbacks):
    now = int(time.time())
    deliver(django_capture_on_commit_callbacks, stripe_event("invoice.paid", invoice("paid", paid=4900), created=now))
    deliver(
        django_capture_on_commit_callbacks, stripe_event("invoice.payment_failed", invoice("open"), created=now - 60)
    )
    assert StripeEvent.objects.get(type="invoice.payment_failed").status == "ignored"
    assert Invoice.objects.get().status == "paid"
    account.refresh_from_db()
    assert (account.organization.billing_state, account.grace_until) == (BillingState.ACTIVE, None)


def test_an_event_carrying_a_card_fingerprint_records_it(account, django_capture_on_commit_callbacks):
    charge = {
        "id": "ch_1",
        "object": "charge",
        "customer": CUSTOMER,
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "fingerprint": "Xt5EWLLDS7FJjR1c"}},
    }
    deliver(django_capture_on_commit_callbacks, stripe_event("charge.succeeded", charge))
    account.refresh_from_db()
    assert account.card_fingerprint == "Xt5EWLLDS7FJjR1c"
    assert StripeEvent.objects.get().status == "processed"


def test_unknown_customers_and_unhandled_types_are_ignored(account, django_capture_on_commit_callbacks):
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("invoice.paid", {**invoice("paid"), "customer": "cus_Unknown"}, event_id="evt_a"),
    )
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("customer.created", {"id": CUSTOMER, "object": "customer"}, event_id="evt_b"),
    )
    statuses = dict(StripeEvent.objects.values_list("event_id", "status"))
    assert statuses == {"evt_a": "ignored", "evt_b": "ignored"}
    assert Invoice.objects.count() == 0


def test_without_a_webhook_secret_every_delivery_answers_400(account, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body, header = signed(stripe_event("invoice.paid", invoice("paid")))
    assert post(body, header).status_code == 400
    assert StripeEvent.objects.count() == 0


def test_lost_failed_and_abandoned_events_are_requeued_and_processed(account):
    from billing.payments.tasks import requeue_stripe_events

    now = timezone.now()
    base = {"type": "invoice.paid", "stripe_created": now, "payload": stripe_event("invoice.paid", invoice("paid"))}
    lost = StripeEvent.objects.create(event_id="evt_lost", received_at=now - timedelta(minutes=5), **base)
    fresh = StripeEvent.objects.create(event_id="evt_fresh", received_at=now, **base)
    abandoned = StripeEvent.objects.create(
        event_id="evt_abandoned", status="processing", claimed_at=now - timedelta(minutes=11), attempts=1, **base
    )
    busy = StripeEvent.objects.create(
        event_id="evt_busy", status="processing", claimed_at=now - timedelta(minutes=1), attempts=1, **base
    )
    assert requeue_stripe_events() == 2
    statuses = {e.event_id: (e.status, e.attempts) for e in StripeEvent.objects.all()}
    assert statuses == {
        lost.event_id: ("processed", 1),
        fresh.event_id: ("pending", 0),
        abandoned.event_id: ("processed", 2),
        busy.event_id: ("processing", 1),
    }


def test_a_redelivery_of_the_claiming_task_takes_its_claim_back_and_no_other_task_can(account):
    from billing.payments.services import stripe_event_claim

    event = StripeEvent.objects.create(
        event_id="evt_claim", type="invoice.paid", stripe_created=timezone.now(), payload={}
    )
    assert stripe_event_claim(event_pk=event.pk, claimant="task-1")
    assert not stripe_event_claim(event_pk=event.pk, claimant="task-2")  # another message: the claim is live
    assert not stripe_event_claim(event_pk=event.pk)
    # The same message delivered again (acks_late after its worker was killed): its first worker is dead.
    assert stripe_event_claim(event_pk=event.pk, claimant="task-1")
    event.refresh_from_db()
    assert (event.status, event.attempts, event.claimed_by) == ("processing", 2, "task-1")


# --- Out of order: the newest event applied first, the older ones ignored, and still the right state -----------


def test_a_subscription_created_after_checkout_but_delivered_first_still_gives_the_paid_tier(
    account, django_capture_on_commit_callbacks
):
    now = int(time.time())
    created = stripe_event("customer.subscription.created", subscription("active"), created=now)
    checkout = stripe_event("checkout.session.completed", checkout_completed(), created=now - 1)
    deliver(django_capture_on_commit_callbacks, created)
    deliver(django_capture_on_commit_callbacks, checkout)

    assert StripeEvent.objects.get(event_id=checkout["id"]).status == "ignored"
    account.organization.refresh_from_db()
    assert (account.organization.tier.code, account.organization.billing_state) == ("pro", BillingState.ACTIVE)


def test_a_past_due_update_delivered_before_the_older_payment_failure_starts_the_grace_period(
    account, django_capture_on_commit_callbacks, settings
):
    settings.BILLING_GRACE_PERIOD_DAYS = 7
    now = int(time.time())
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("checkout.session.completed", checkout_completed(), created=now - 60),
    )
    deliver(
        django_capture_on_commit_callbacks,
        stripe_event("customer.subscription.updated", subscription("past_due"), created=now),
    )
    failed = stripe_event("invoice.payment_failed", invoice("open"), created=now - 1)
    deliver(django_capture_on_commit_callbacks, failed)

    assert StripeEvent.objects.get(event_id=failed["id"]).status == "ignored"
    account.refresh_from_db()
    assert account.organization.billing_state == BillingState.PAST_DUE
    assert timezone.now() + timedelta(days=6) < account.grace_until <= timezone.now() + timedelta(days=7)


def test_an_invoice_paid_delivered_before_everything_else_gives_the_paid_tier(
    account, django_capture_on_commit_callbacks
):
    now = int(time.time())
    deliver(django_capture_on_commit_callbacks, stripe_event("invoice.paid", invoice("paid", paid=4900), created=now))
    for event in (
        stripe_event("customer.subscription.created", subscription("active"), created=now - 1),
        stripe_event("checkout.session.completed", checkout_completed(), created=now - 1),
    ):
        deliver(django_capture_on_commit_callbacks, event)

    account.refresh_from_db()
    assert account.subscription_id == SUBSCRIPTION
    assert (account.organization.tier.code, account.organization.billing_state) == ("pro", BillingState.ACTIVE)
