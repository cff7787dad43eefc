"""A fake Stripe at the HTTP layer, under the real `stripe` library: it answers with bodies shaped like Stripe's,
replays a stored answer for a repeated Idempotency-Key like Stripe does, and records every request."""

import itertools
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import stripe


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


class FakeStripeHTTPClient(stripe.HTTPClient):
    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._replies: dict[str, tuple[str, int, dict[str, str]]] = {}
        self._failures: list[tuple[int, dict]] = []

    # Test controls -------------------------------------------------------------------------------------------
    def fail_next(self, *, status: int = 500, error_type: str = "api_error", message: str = "Stripe is down") -> None:
        self._failures.append((status, {"error": {"type": error_type, "message": message}}))

    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # stripe.HTTPClient ------------------------------------------------------------------------------------------
    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        record = RecordedRequest(
            method=method.upper(),
            path=path,
            headers=dict(headers or {}),
            params=dict(parse_qsl(post_data or "", keep_blank_values=True)),
        )
        self.requests.append(record)
        key = record.idempotency_key
        if key and key in self._replies:  # Stripe replays the first answer to a repeated key
            return self._replies[key]
        if self._failures:
            status, body = self._failures.pop(0)
            reply = (json.dumps(body), status, {"Request-Id": f"req_{next(self._ids)}"})
        else:
            reply = (json.dumps(self._answer(record)), 200, {"Request-Id": f"req_{next(self._ids)}"})
            if key:
                self._replies[key] = reply
        return reply

    def close(self) -> None:
        pass

    def _answer(self, r: RecordedRequest) -> dict:
        n = next(self._ids)
        p = r.params
        if r.path == "/v1/customers":
            return {
                "id": f"cus_Test{n:010d}",
                "object": "customer",
                "created": 1_790_000_000,
                "email": p.get("email"),
                "name": p.get("name"),
                "livemode": False,
                "metadata": {"organization_id": p.get("metadata[organization_id]")},
            }
        if r.path == "/v1/checkout/sessions":
            session_id = f"cs_test_a1{n:08d}"
            return {
                "id": session_id,
                "object": "checkout.session",
                "mode": "subscription",
                "customer": p.get("customer"),
                "client_reference_id": p.get("client_reference_id"),
                "status": "open",
                "success_url": p.get("success_url"),
                "cancel_url": p.get("cancel_url"),
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                "livemode": False,
            }
        if r.path == "/v1/billing_portal/sessions":
            return {
                "id": f"bps_Test{n:010d}",
                "object": "billing_portal.session",
                "customer": p.get("customer"),
                "return_url": p.get("return_url"),
                "url": f"https://billing.stripe.com/p/session/test_{n:010d}",
                "livemode": False,
            }
        if r.path == "/v1/billing/meter_events":
            return {
                "object": "billing.meter_event",
                "event_name": p.get("event_name"),
                "identifier": p.get("identifier"),
                "payload": {
                    "stripe_customer_id": p.get("payload[stripe_customer_id]"),
                    "value": p.get("payload[value]"),
                },
                "timestamp": int(p.get("timestamp", "0")),
                "created": 1_790_000_000,
                "livemode": False,
            }
        if r.path == "/v1/billing/meters":
            return {
                "id": f"mtr_test_{n:010d}",
                "object": "billing.meter",
                "event_name": p.get("event_name"),
                "display_name": p.get("display_name"),
                "default_aggregation": {"formula": p.get("default_aggregation[formula]")},
                "status": "active",
                "livemode": False,
            }
        if r.path == "/v1/products" or r.path.startswith("/v1/products/"):
            product_id = r.path.rsplit("/", 1)[1] if r.path.startswith("/v1/products/") else f"prod_Test{n:08d}"
            return {"id": product_id, "object": "product", "name": p.get("name"), "active": True, "livemode": False}
        if r.path == "/v1/prices" or r.path.startswith("/v1/prices/"):
            price_id = r.path.rsplit("/", 1)[1] if r.path.startswith("/v1/prices/") else f"price_Test{n:08d}"
            return {
                "id": price_id,
                "object": "price",
                "product": p.get("product"),
                "currency": p.get("currency"),
                "active": p.get("active", "true") == "true",
                "livemode": False,
            }
        raise AssertionError(f"unexpected Stripe call {r.method} {r.path}")
