"""Writes of the Stripe side of billing: recording and applying webhook events, customers, Checkout and portal
sessions, the grace period, price sync and usage reports.

Organizations change tier only through `Organization.save(update_fields=[...])`: the save signal refreshes the API's
key snapshots, so quota limits follow at once (a queryset `.update()` would skip that).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import BillingState, Membership, Organization, Role
from billing.payments import stripe_gateway
from billing.payments.models import (
    BillingAccount,
    Invoice,
    StripeEvent,
    StripeEventStatus,
    StripeTierPrice,
)
from core.errors import ApplicationError
from tiers.models import Tier

logger = logging.getLogger(__name__)

PAID_TIER_CODE = "pro"
FREE_TIER_CODE = "free"
# A claimed event whose worker died is claimable again after this (longer than the task's hard time limit).
STALE_CLAIM_AFTER = timedelta(minutes=10)


class PaymentsNotConfiguredError(ApplicationError):
    code = "payments_not_configured"
    status = 503

    def __init__(self, message: str = "Payments are not configured on this platform.") -> None:
        super().__init__(message)


def _payments_configured() -> bool:
    return bool(settings.STRIPE_API_KEY)


def _from_timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


# --- Webhook events -------------------------------------------------------------------------------------------


def stripe_event_record(*, event: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event once, under the unique constraint on its id, and enqueue its processing on commit.

    Returns (row, created). A redelivered event id returns the existing row and enqueues nothing.
    """
    from billing.payments.tasks import process_stripe_event

    with transaction.atomic():
        row, created = StripeEvent.objects.get_or_create(
            event_id=event["id"],
            defaults={
                "type": event["type"],
                "stripe_created": _from_timestamp(event["created"]),
                "payload": event,
            },
        )
        if created:
            transaction.on_commit(lambda: process_stripe_event.delay(row.pk))
    return row, created


def stripe_event_claim(*, event_pk: int, claimant: str = "") -> bool:
    """Claim an event for processing: pending/failed (or a stale claim of a dead worker) -> processing. Exactly one
    caller wins; the others get False.

    `claimant` is the claiming task's id. A redelivery of the same task message (its worker was killed mid-task,
    acks_late) may take the claim back at once: a message is delivered to one worker at a time, so the claim's
    holder is dead. Without that the event would wait STALE_CLAIM_AFTER for the requeue job."""
    now = timezone.now()
    claimable = Q(status__in=[StripeEventStatus.PENDING, StripeEventStatus.FAILED]) | Q(
        status=StripeEventStatus.PROCESSING, claimed_at__lt=now - STALE_CLAIM_AFTER
    )
    if claimant:
        claimable |= Q(status=StripeEventStatus.PROCESSING, claimed_by=claimant)
    updated = StripeEvent.objects.filter(claimable, pk=event_pk).update(
        status=StripeEventStatus.PROCESSING, claimed_at=now, claimed_by=claimant, attempts=F("attempts") + 1
    )
    return updated == 1


def stripe_event_mark_failed(*, event_pk: int, error: str) -> None:
    StripeEvent.objects.filter(pk=event_pk, status=StripeEventStatus.PROCESSING).update(
        status=StripeEventStatus.FAILED, error=error[:4000]
    )


def stripe_events_requeue(*, now: datetime | None = None, max_attempts: int = 10) -> list[int]:
    """Events to hand to the processing task again: pending ones whose enqueue was lost (older than a minute),
    failed ones under `max_attempts`, and claims of dead workers. Returns their pks (the caller enqueues them)."""
    now = now or timezone.now()
    due = (
        Q(status=StripeEventStatus.PENDING, received_at__lt=now - timedelta(minutes=1))
        | Q(status=StripeEventStatus.FAILED, attempts__lt=max_attempts)
        | Q(status=StripeEventStatus.PROCESSING, claimed_at__lt=now - STALE_CLAIM_AFTER)
    )
    return list(StripeEvent.objects.filter(due).order_by("stripe_created", "id").values_list("pk", flat=True)[:500])


@dataclass(frozen=True)
class _Outcome:
    status: str
    note: str = ""


def stripe_event_process(*, event_pk: int) -> str | None:
    """Apply a claimed event in one transaction together with its final status (processed or ignored), so the
    effect happens exactly once. Returns the final status, or None if the row is gone or not claimed by us."""
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().filter(pk=event_pk).first()
        if event is None or event.status != StripeEventStatus.PROCESSING:
            return None
        outcome = _apply(event)
        event.status = outcome.status
        event.error = outcome.note
        event.processed_at = timezone.now()
        event.save(update_fields=["status", "error", "processed_at"])
    return outcome.status


_ACTIVE_STATUSES = {"active": BillingState.ACTIVE, "trialing": BillingState.ACTIVE}
_PAST_DUE_STATUSES = {"past_due": BillingState.PAST_DUE, "unpaid": BillingState.PAST_DUE}
_CANCELED_STATUSES = {"canceled": BillingState.CANCELED, "incomplete_expired": BillingState.CANCELED}
SUBSCRIPTION_STATUS_TO_BILLING_STATE = {**_ACTIVE_STATUSES, **_PAST_DUE_STATUSES, **_CANCELED_STATUSES}


def _customer_id_of(obj: dict[str, Any]) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) else None


def _account_for(obj: dict[str, Any]) -> BillingAccount | None:
    """The locked billing account an event's object belongs to: by customer id, else (Checkout) by our organization
    id in client_reference_id/metadata."""
    customer_id = _customer_id_of(obj)
    if customer_id:
        account = BillingAccount.objects.select_for_update().filter(stripe_customer_id=customer_id).first()
        if account is not None:
            return account
    reference = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("organization_id")
    if reference and str(reference).isdigit() and Organization.objects.filter(pk=int(reference)).exists():
        account, _ = BillingAccount.objects.get_or_create(organization_id=int(reference))
        account = BillingAccount.objects.select_for_update().get(pk=account.pk)
        if customer_id and not account.stripe_customer_id:
            account.stripe_customer_id = customer_id
            account.save(update_fields=["stripe_customer_id", "updated_at"])
        return account
    return None


def _card_fingerprint_of(obj: dict[str, Any]) -> str | None:
    """Best effort: the card fingerprint of a payment method, a charge, or an expanded payment method."""
    candidates = [
        obj.get("card"),
        (obj.get("payment_method_details") or {}).get("card"),
        (obj.get("payment_method") or {}).get("card") if isinstance(obj.get("payment_method"), dict) else None,
    ]
    for card in candidates:
        if isinstance(card, dict) and isinstance(card.get("fingerprint"), str) and card["fingerprint"]:
            return card["fingerprint"]
    return None


def _tier(code: str) -> Tier:
    return Tier.objects.get(code=code)


def _set_organization(organization: Organization, *, tier_code: str | None = None, billing_state: str) -> None:
    fields = ["billing_state"]
    organization.billing_state = billing_state
    if tier_code is not None and organization.tier.code != tier_code:
        organization.tier = _tier(tier_code)
        fields.append("tier")
    # .save(), never queryset.update(): the post_save signal refreshes the API key snapshots (the quota limits).
    organization.save(update_fields=fields)


def _subscription_period_end(sub: dict[str, Any]) -> datetime | None:
    end = _from_timestamp(sub.get("current_period_end"))
    if end is None:  # newer API versions carry the period on the subscription items
        items = (sub.get("items") or {}).get("data") or []
        if items and isinstance(items[0], dict):
            end = _from_timestamp(items[0].get("current_period_end"))
    return end


def _invoice_upsert(account: BillingAccount, obj: dict[str, Any]) -> None:
    invoice_id = obj.get("id")
    if not isinstance(invoice_id, str):
        return
    lines = ((obj.get("lines") or {}).get("data") or [{}])[0] or {}
    period = lines.get("period") or {}
    values = {
        "organization_id": account.organization_id,
        "number": obj.get("number") or "",
        "amount_due": obj.get("amount_due") or 0,
        "amount_paid": obj.get("amount_paid") or 0,
        "currency": obj.get("currency") or "",
        "status": obj.get("status") or "",
        "hosted_invoice_url": obj.get("hosted_invoice_url") or "",
        "period_start": _from_timestamp(period.get("start")) or _from_timestamp(obj.get("period_start")),
        "period_end": _from_timestamp(period.get("end")) or _from_timestamp(obj.get("period_end")),
        "created_at": _from_timestamp(obj.get("created")) or timezone.now(),
    }
    invoice, created = Invoice.objects.select_for_update().get_or_create(stripe_invoice_id=invoice_id, defaults=values)
    if not created:
        if invoice.status == "paid" and values["status"] != "paid":
            # A late "payment failed" for an invoice we already know is paid must not regress it.
            values["status"] = "paid"
            values["amount_paid"] = max(invoice.amount_paid, values["amount_paid"])
        for field, value in values.items():
            setattr(invoice, field, value)
        invoice.save()


def _apply(event: StripeEvent) -> _Outcome:
    obj = ((event.payload.get("data") or {}).get("object")) or {}
    if not isinstance(obj, dict):
        return _Outcome(StripeEventStatus.IGNORED, "The event carries no object.")
    account = _account_for(obj)
    if account is None:
        return _Outcome(StripeEventStatus.IGNORED, "No billing account for this event's customer.")

    fingerprint = _card_fingerprint_of(obj)
    if fingerprint and fingerprint != account.card_fingerprint:
        account.card_fingerprint = fingerprint
        account.save(update_fields=["card_fingerprint", "updated_at"])

    handler = _HANDLERS.get(event.type)
    if handler is None:
        if fingerprint:
            return _Outcome(StripeEventStatus.PROCESSED)
        return _Outcome(StripeEventStatus.IGNORED, f"Event type {event.type} is not handled.")

    if event.type.startswith("invoice."):
        # The invoice row is history, kept whatever the order; the state change below obeys the ordering rule.
        _invoice_upsert(account, obj)
    if account.last_subscription_event_at is not None and event.stripe_created < account.last_subscription_event_at:
        return _Outcome(StripeEventStatus.IGNORED, "Older than the last applied event of this account.")

    organization = Organization.objects.select_related("tier").get(pk=account.organization_id)
    handler(account, organization, obj)
    account.last_subscription_event_at = event.stripe_created
    account.save()
    return _Outcome(StripeEventStatus.PROCESSED)


def _on_checkout_completed(account: BillingAccount, organization: Organization, obj: dict[str, Any]) -> None:
    if obj.get("mode") not in (None, "subscription"):
        return
    customer_id = _customer_id_of(obj)
    if customer_id and not account.stripe_customer_id:
        account.stripe_customer_id = customer_id
    subscription = obj.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    if isinstance(subscription, str):
        account.subscription_id = subscription
    account.subscription_status = "active"
    account.grace_until = None
    _set_organization(organization, tier_code=PAID_TIER_CODE, billing_state=BillingState.ACTIVE)


def _on_subscription_updated(account: BillingAccount, organization: Organization, obj: dict[str, Any]) -> None:
    """Each subscription event carries the whole subscription, so it sets everything its status implies: Stripe
    sends events out of order, and the older events this one makes obsolete (checkout completed, payment failed)
    are ignored once it is applied."""
    status = obj.get("status") or ""
    account.subscription_id = obj.get("id") or account.subscription_id
    account.subscription_status = status
    account.current_period_end = _subscription_period_end(obj) or account.current_period_end
    billing_state = SUBSCRIPTION_STATUS_TO_BILLING_STATE.get(status)
    if billing_state is None:  # incomplete, paused: no change to what the organization may do
        return
    tier_code = None
    if billing_state == BillingState.ACTIVE:
        account.grace_until = None
        tier_code = PAID_TIER_CODE  # an active subscription is the paid tier, whichever event said so first
    elif billing_state == BillingState.PAST_DUE and account.grace_until is None:
        # A payment failed (its own event may be older, hence ignored): the grace period starts here.
        account.grace_until = timezone.now() + timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)
    _set_organization(organization, tier_code=tier_code, billing_state=billing_state)


def _on_subscription_deleted(account: BillingAccount, organization: Organization, obj: dict[str, Any]) -> None:
    account.subscription_status = obj.get("status") or "canceled"
    account.grace_until = None
    _set_organization(organization, tier_code=FREE_TIER_CODE, billing_state=BillingState.CANCELED)


def _on_invoice_paid(account: BillingAccount, organization: Organization, obj: dict[str, Any]) -> None:
    account.grace_until = None
    subscription = obj.get("subscription")
    if isinstance(subscription, str) and not account.subscription_id:
        account.subscription_id = subscription  # the first event applied may be this one (the others came later)
    restore = (
        organization.tier.code == FREE_TIER_CODE
        and account.subscription_id
        and account.subscription_status not in ("canceled", "incomplete_expired")
        and obj.get("subscription")
    )
    # A payment after the grace period ended brings the paid tier back.
    _set_organization(organization, tier_code=PAID_TIER_CODE if restore else None, billing_state=BillingState.ACTIVE)


def _on_invoice_payment_failed(account: BillingAccount, organization: Organization, obj: dict[str, Any]) -> None:
    if account.grace_until is None:  # Stripe's retries fail again: the grace period is not extended
        account.grace_until = timezone.now() + timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)
    _set_organization(organization, billing_state=BillingState.PAST_DUE)


_HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription_updated,
    "customer.subscription.updated": _on_subscription_updated,
    "customer.subscription.deleted": _on_subscription_deleted,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_payment_failed,
}


def grace_periods_end(*, now: datetime | None = None) -> int:
    """Organizations whose grace period after a failed payment has run out go back to the free tier (through
    .save(), so the quota limits follow at once). Returns how many were moved."""
    now = now or timezone.now()
    moved = 0
    for account_pk in BillingAccount.objects.filter(grace_until__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            account = BillingAccount.objects.select_for_update().filter(pk=account_pk, grace_until__lte=now).first()
            if account is None:
                continue
            organization = Organization.objects.select_related("tier").get(pk=account.organization_id)
            account.grace_until = None
            account.save(update_fields=["grace_until", "updated_at"])
            if organization.billing_state == BillingState.PAST_DUE:
                _set_organization(organization, tier_code=FREE_TIER_CODE, billing_state=BillingState.PAST_DUE)
                moved += 1
    return moved


# --- Customers, Checkout and the portal -------------------------------------------------------------------------


def _owner_email(organization_id: int) -> str:
    membership = (
        Membership.objects.filter(organization_id=organization_id, role=Role.OWNER)
        .select_related("user")
        .order_by("id")
        .first()
    )
    return membership.user.email if membership else ""


def billing_account_ensure_customer(*, organization_id: int) -> str | None:
    """The organization's Stripe customer id, creating the customer once (idempotency key
    `moat-customer-<organization id>`). Returns None if the organization is gone. No transaction is held over the
    call to Stripe; the id is stored only if none was stored meanwhile."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return None
    account, _ = BillingAccount.objects.get_or_create(organization=organization)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = stripe_gateway.customer_create(
        organization_id=organization.pk,
        name=organization.name,
        email=_owner_email(organization.pk),
        idempotency_key=f"moat-customer-{organization.pk}",
    )
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=customer_id, updated_at=timezone.now()
    )
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


def checkout_session_start(*, organization: Organization, success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout url to subscribe the organization to the paid tier. Creates the customer first if missing.
    Raises PaymentsNotConfiguredError without an API key or before the prices were synced."""
    if not _payments_configured():
        raise PaymentsNotConfiguredError()
    prices = StripeTierPrice.objects.filter(tier__code=PAID_TIER_CODE).exclude(base_price_id="").first()
    if prices is None:
        logger.warning("Checkout requested before `manage.py sync_stripe_prices` was run.")
        raise PaymentsNotConfiguredError()
    customer_id = billing_account_ensure_customer(organization_id=organization.pk)
    assert customer_id is not None  # noqa: S101 - the organization was passed in, so it exists
    # Same organization, prices and urls within the hour: Stripe answers with the same session (a double click
    # opens one session, not two).
    digest = hashlib.sha256(f"{success_url}\n{cancel_url}".encode()).hexdigest()[:16]
    key = (
        f"moat-checkout-{organization.pk}-{prices.base_price_id}-{prices.metered_price_id}-{digest}-"
        f"{timezone.now():%Y%m%d%H}"
    )
    return stripe_gateway.checkout_session_create(
        customer_id=customer_id,
        base_price_id=prices.base_price_id,
        metered_price_id=prices.metered_price_id or None,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=key,
        client_reference_id=str(organization.pk),
    )


def portal_session_start(*, organization: Organization, return_url: str) -> str:
    """A Stripe customer-portal url (card, invoices, cancel). Creates the customer first if missing."""
    if not _payments_configured():
        raise PaymentsNotConfiguredError()
    customer_id = billing_account_ensure_customer(organization_id=organization.pk)
    assert customer_id is not None  # noqa: S101
    return stripe_gateway.portal_session_create(customer_id=customer_id, return_url=return_url)
