import json
import time

import pytest
import stripe

from tests.billing.payments.fakes import FakeStripeHTTPClient

WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"


@pytest.fixture
def fake_stripe(monkeypatch, settings) -> FakeStripeHTTPClient:
    """Payments configured, with Stripe faked at the HTTP layer (no network) and no client-side retries."""
    client = FakeStripeHTTPClient()
    monkeypatch.setattr(stripe, "default_http_client", client)
    settings.STRIPE_API_KEY = "sk_test_suite"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return client


def stripe_event(event_type: str, obj: dict, *, created: int | None = None, event_id: str | None = None) -> dict:
    created = int(time.time()) if created is None else created
    return {
        "id": event_id or f"evt_test_{abs(hash((event_type, created, json.dumps(obj, sort_keys=True)))):016d}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def signed(event: dict, *, timestamp: int | None = None, secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """The raw body and the Stripe-Signature header Stripe would send, computed with the library's own helper."""
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    return body.encode(), header
