"""The one module that talks to Stripe (house style, habit 8): nothing else imports `stripe`.

Every function is keyword-only, takes and returns plain values (ids, urls, dicts), and turns the library's errors
into one `PaymentGatewayError` that says whether a retry can help. Every create carries the caller's idempotency key,
derived from our own row, so a retried task never creates a second object at Stripe.

The HTTP client is `stripe.default_http_client` when one is installed (the tests install a fake one there; nothing
else should), otherwise the library's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings

from core.errors import ApplicationError


class PaymentGatewayError(ApplicationError):
    """Stripe refused or could not be reached. `retryable`: a later attempt may succeed (network, 5xx, rate limit);
    card and invalid-request errors never will."""

    code = "payment_gateway_error"
    status = 502

    def __init__(self, message: str, *, retryable: bool, stripe_code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.stripe_code = stripe_code


class WebhookSignatureError(ApplicationError):
    """A webhook that is unsigned, forged, stale, dated in the future or not a Stripe event."""

    code = "invalid_signature"
    status = 400


def _client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        http_client=stripe.default_http_client,
        max_network_retries=getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", 2),
    )


def _is_retryable(exc: stripe.StripeError) -> bool:
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    if isinstance(exc, stripe.CardError | stripe.InvalidRequestError | stripe.IdempotencyError):
        return False
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return False
    status = exc.http_status
    return isinstance(exc, stripe.APIError) or status is None or status == 429 or status >= 500


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        message = exc.user_message or str(exc) or exc.__class__.__name__
        raise PaymentGatewayError(
            f"Stripe: {message}", retryable=_is_retryable(exc), stripe_code=getattr(exc, "code", None)
        ) from exc


# --- Customers, Checkout, the customer portal ---------------------------------------------------------------------


def customer_create(*, organization_id: int, name: str, email: str, idempotency_key: str) -> str:
    """Create a Stripe customer for an organization; returns its id ("cus_...")."""
    params: dict[str, Any] = {"name": name, "metadata": {"organization_id": str(organization_id)}}
    if email:
        params["email"] = email
    with _translated_errors():
        customer = _client().v1.customers.create(params=params, options={"idempotency_key": idempotency_key})
    return customer.id


def checkout_session_create(
    *,
    customer_id: str,
    base_price_id: str,
    metered_price_id: str | None,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
    client_reference_id: str | None = None,
) -> str:
    """Start a subscription Checkout session (base price + metered overage price); returns its url."""
    line_items: list[dict[str, Any]] = [{"price": base_price_id, "quantity": 1}]
    if metered_price_id:
        # Metered prices take no quantity: the meter decides it.
        line_items.append({"price": metered_price_id})
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer_id,
        "line_items": line_items,
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if client_reference_id:
        params["client_reference_id"] = client_reference_id
        params["subscription_data"] = {"metadata": {"organization_id": client_reference_id}}
    with _translated_errors():
        session = _client().v1.checkout.sessions.create(params=params, options={"idempotency_key": idempotency_key})
    return session.url


def portal_session_create(*, customer_id: str, return_url: str) -> str:
    """A customer-portal session (manage card, cancel); returns its url. Sessions are short-lived and creating one
    has no lasting effect, so no idempotency key is needed."""
    with _translated_errors():
        session = _client().v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": return_url}
        )
    return session.url


# --- Usage ----------------------------------------------------------------------------------------------------


def meter_event_create(*, event_name: str, customer_id: str, value: int, identifier: str, timestamp: datetime) -> None:
    """Report usage to the billing meter. Stripe deduplicates on `identifier`, which is also the idempotency key, so
    sending the same report twice never bills twice."""
    with _translated_errors():
        _client().v1.billing.meter_events.create(
            params={
                "event_name": event_name,
                "payload": {"stripe_customer_id": customer_id, "value": str(int(value))},
                "identifier": identifier,
                "timestamp": int(timestamp.timestamp()),
            },
            options={"idempotency_key": identifier},
        )


# --- Products, prices and the meter (manage.py sync_stripe_prices) ----------------------------------------------


def product_create(*, name: str, tier_code: str, idempotency_key: str) -> str:
    with _translated_errors():
        product = _client().v1.products.create(
            params={"name": name, "metadata": {"tier_code": tier_code}}, options={"idempotency_key": idempotency_key}
        )
    return product.id


def product_update(*, product_id: str, name: str) -> None:
    with _translated_errors():
        _client().v1.products.update(product_id, params={"name": name})


def price_create_recurring(
    *, product_id: str, currency: str, unit_amount_cents: int, tier_code: str, idempotency_key: str
) -> str:
    """A monthly licensed price (the tier's base price)."""
    with _translated_errors():
        price = _client().v1.prices.create(
            params={
                "product": product_id,
                "currency": currency,
                "unit_amount": unit_amount_cents,
                "recurring": {"interval": "month", "usage_type": "licensed"},
                "metadata": {"tier_code": tier_code, "kind": "base"},
            },
            options={"idempotency_key": idempotency_key},
        )
    return price.id


def price_create_metered(
    *,
    product_id: str,
    currency: str,
    meter_id: str,
    included_units: int,
    unit_amount_decimal: str,
    tier_code: str,
    idempotency_key: str,
) -> str:
    """A monthly metered price attached to the billing meter: graduated, the first `included_units` of a period
    free, each unit above at `unit_amount_decimal` cents."""
    tiers: list[dict[str, Any]] = []
    if included_units > 0:
        tiers.append({"up_to": included_units, "unit_amount_decimal": "0"})
    tiers.append({"up_to": "inf", "unit_amount_decimal": unit_amount_decimal})
    with _translated_errors():
        price = _client().v1.prices.create(
            params={
                "product": product_id,
                "currency": currency,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": tiers,
                "metadata": {"tier_code": tier_code, "kind": "overage"},
            },
            options={"idempotency_key": idempotency_key},
        )
    return price.id


def price_deactivate(*, price_id: str) -> None:
    """Archive a superseded price (existing subscriptions keep it; new Checkout sessions use the new one)."""
    with _translated_errors():
        _client().v1.prices.update(price_id, params={"active": False})


def meter_create(*, display_name: str, event_name: str, idempotency_key: str) -> str:
    """A billing meter summing the `value` of events, mapped to customers by `stripe_customer_id`."""
    with _translated_errors():
        meter = _client().v1.billing.meters.create(
            params={
                "display_name": display_name,
                "event_name": event_name,
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                "value_settings": {"event_payload_key": "value"},
            },
            options={"idempotency_key": idempotency_key},
        )
    return meter.id


# --- Webhooks -------------------------------------------------------------------------------------------------


def _signature_timestamp(signature_header: str) -> int:
    for item in signature_header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise ValueError("no timestamp")


def verify_webhook(*, payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """Verify Stripe's signature on the raw body and return the event as a dict.

    The library checks the HMAC and refuses timestamps older than the tolerance; it accepts any timestamp from the
    future, so that side is checked here. Raises `WebhookSignatureError` for anything unsigned, forged, stale, from
    the future, or not a JSON event with an id, a type and a creation time.
    """
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, settings.STRIPE_WEBHOOK_SECRET, tolerance)
        timestamp = _signature_timestamp(signature_header or "")
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as exc:
        raise WebhookSignatureError("The Stripe signature is missing, invalid or outside the tolerance.") from exc
    if timestamp > time.time() + tolerance:
        raise WebhookSignatureError("The Stripe signature is missing, invalid or outside the tolerance.")
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise WebhookSignatureError("The body is not a Stripe event.") from exc
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("created"), int)
    ):
        raise WebhookSignatureError("The body is not a Stripe event.")
    return event
