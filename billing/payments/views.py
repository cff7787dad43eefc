"""Stripe's webhook endpoint: verify, store once, answer. Processing happens in a task."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.payments.services import stripe_event_record
from billing.payments.stripe_gateway import WebhookSignatureError, verify_webhook


# CSRF-exempt because Stripe cannot send a token; the signature on the raw body is the authentication.
@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """POST /billing/webhooks/stripe/: 400 for anything unsigned, forged, stale or future-dated (nothing stored);
    200 once the event is stored under its unique id (a redelivery answers 200 and changes nothing)."""
    try:
        event = verify_webhook(payload=request.body, signature_header=request.headers.get("Stripe-Signature"))
    except WebhookSignatureError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
    _row, created = stripe_event_record(event=event)
    return JsonResponse({"received": True, "duplicate": not created})
