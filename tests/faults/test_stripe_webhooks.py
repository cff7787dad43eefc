"""Stripe webhooks as Stripe really delivers them: every event twice, the two copies at the same moment, and the
events of each subscription in a random order (five shuffles), to the real web server, processed by a real worker
running two tasks at a time. Each event must take effect exactly once, and each organization must end in the state
its newest event describes, whatever the order."""

import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import BillingState, Organization
from billing.payments.models import BillingAccount, Invoice, StripeEvent
from tests.billing.payments.conftest import WEBHOOK_SECRET, signed, stripe_event
from tests.factories import OrganizationFactory
from tests.faults.load import send, wait_until
from tests.processes import celery_worker, web_server

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _history(customer: str, organization_id: int, t0: int) -> list[dict]:
    """An upgrade, a failed payment, the payment, and the cancellation, as Stripe emits them (same-second events
    included: Stripe's clock has whole seconds, so their order is the arrival order)."""
    sub, prefix = f"sub_{customer}", f"evt_{customer}"

    def subscription(status: str) -> dict:
        return {"id": sub, "object": "subscription", "customer": customer, "status": status}

    def invoice(number: str, status: str) -> dict:
        return {"id": f"in_{customer}_{number}", "object": "invoice", "customer": customer, "subscription": sub,
                "status": status, "amount_due": 4900, "amount_paid": 4900 if status == "paid" else 0,
                "currency": "usd", "number": number}  # fmt: skip

    checkout = {"id": f"cs_{customer}", "object": "checkout.session", "mode": "subscription", "customer": customer,
                "subscription": sub, "client_reference_id": str(organization_id)}  # fmt: skip
    steps = [
        ("checkout.session.completed", checkout, t0),
        ("customer.subscription.created", subscription("active"), t0 + 1),
        ("invoice.paid", invoice("1", "paid"), t0 + 1),
        ("invoice.payment_failed", invoice("2", "open"), t0 + 10),
        ("customer.subscription.updated", subscription("past_due"), t0 + 11),
        ("invoice.paid", invoice("2", "paid"), t0 + 20),
        ("customer.subscription.updated", subscription("active"), t0 + 21),
        ("customer.subscription.deleted", subscription("canceled"), t0 + 30),
    ]
    return [stripe_event(kind, obj, created=at, event_id=f"{prefix}_{n}") for n, (kind, obj, at) in enumerate(steps)]


ROUNDS = 5

# How far each organization's history goes, and the state its newest events describe.
SCENARIOS = {
    "upgraded": (3, "pro", BillingState.ACTIVE, False),
    "payment_failed": (5, None, BillingState.PAST_DUE, True),  # the tier is whatever the older events left
    "paid_again": (7, "pro", BillingState.ACTIVE, False),
    "canceled": (8, "free", BillingState.CANCELED, False),
}


def test_webhooks_delivered_twice_concurrently_and_out_of_order_take_effect_once_and_end_in_the_newest_state(
    tmp_path,
):
    t0 = int(time.time()) - 60
    events, expected, deliveries = [], {}, []
    for shuffle in range(ROUNDS):  # each round: the four organizations' events in another order
        round_events = []
        for name, (length, tier, billing_state, in_grace) in SCENARIOS.items():
            organization = OrganizationFactory(name=f"{name} {shuffle}")
            customer = f"cus_Faults{shuffle}{name.title().replace('_', '')}"
            BillingAccount.objects.create(organization=organization, stripe_customer_id=customer)
            round_events += _history(customer, organization.pk, t0)[:length]
            expected[organization.pk] = (tier, billing_state, in_grace)
        order = random.Random(shuffle).sample(round_events, len(round_events))  # reproducible shuffles
        deliveries += [signed(event) for event in order for _ in range(2)]  # the two copies side by side
        events += round_events

    env = {"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    with (
        web_server(log_path=tmp_path / "web.log", workers=2, extra_env=env) as (base_url, _),
        celery_worker(log_path=tmp_path / "worker.log", extra_env=env, concurrency=2),
    ):
        import urllib.request

        def post(delivery: tuple[bytes, str]):
            body, header = delivery
            request = urllib.request.Request(  # noqa: S310 - the loopback server the test started
                f"{base_url}/billing/webhooks/stripe/",
                data=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
            )
            return send(request)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(post, deliveries))
        wait_until(
            lambda: (
                StripeEvent.objects.count() == len(events)
                and not StripeEvent.objects.filter(status__in=["pending", "processing", "failed"]).exists()
            ),
            timeout=60,
            what="every event processed",
        )
        seconds = time.monotonic() - started

    statuses = defaultdict(int)
    for row in StripeEvent.objects.all():
        statuses[row.status] += 1
    print(
        f"\nStripe webhooks: {len(deliveries)} deliveries of {len(events)} events in {seconds:.1f} s; "
        f"answers {sorted({a.status for a in answers})}; events {dict(statuses)}"
    )

    # Stored once: every delivery answered 200, and of each pair exactly one was new.
    assert {answer.status for answer in answers} == {200}
    duplicates = defaultdict(list)
    for (body, _), answer in zip(deliveries, answers, strict=True):
        duplicates[body].append(answer.json()["duplicate"])
    assert all(sorted(flags) == [False, True] for flags in duplicates.values())
    # Applied once: every event was claimed once and ended processed (applied) or ignored (older than one applied).
    assert StripeEvent.objects.count() == len(events)
    assert set(StripeEvent.objects.values_list("attempts", flat=True)) == {1}
    assert set(StripeEvent.objects.values_list("status", flat=True)) <= {"processed", "ignored"}
    # The newest state, for each organization.
    for organization_id, (tier, billing_state, in_grace) in expected.items():
        organization = Organization.objects.select_related("tier", "billing_account").get(pk=organization_id)
        account = organization.billing_account
        assert organization.billing_state == billing_state, organization.name
        if tier is not None:
            assert organization.tier.code == tier, organization.name
        grace = account.grace_until is not None
        assert grace == in_grace, organization.name
        if in_grace:
            assert account.grace_until > timezone.now() + timedelta(days=6)
        newest = max(e["created"] for e in events if e["data"]["object"]["customer"] == account.stripe_customer_id)
        assert account.last_subscription_event_at.timestamp() == newest
    # The invoices are history, kept whatever the order: a paid invoice stays paid.
    invoices = dict(Invoice.objects.values_list("stripe_invoice_id", "status"))
    assert len(invoices) == ROUNDS * (1 + 2 + 2 + 2)
    for shuffle in range(ROUNDS):
        assert invoices[f"in_cus_Faults{shuffle}PaidAgain_2"] == "paid"
        assert invoices[f"in_cus_Faults{shuffle}PaymentFailed_2"] == "open"
