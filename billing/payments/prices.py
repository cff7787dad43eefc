"""Tiers as Stripe products and prices (`manage.py sync_stripe_prices`): prices are defined once, in the tiers."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from billing.payments import stripe_gateway
from billing.payments.models import (
    StripeTierPrice,
)
from billing.payments.services import PaymentsNotConfiguredError, _payments_configured
from tiers.models import Tier


def _cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal("1")))


def _decimal_str(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def stripe_prices_sync() -> list[StripeTierPrice]:
    """Create or update, for each public tier with a price, its product, monthly base price, the billing meter and
    the metered overage price, storing the ids. Idempotency keys come from the tier code and the amounts, and a
    price is created only when its amount changed (the superseded one is archived), so re-runs create nothing."""
    if not _payments_configured():
        raise PaymentsNotConfiguredError()
    currency = getattr(settings, "BILLING_CURRENCY", "usd")
    event_name = settings.STRIPE_METER_EVENT_NAME
    synced: list[StripeTierPrice] = []
    meter_id = StripeTierPrice.objects.exclude(meter_id="").values_list("meter_id", flat=True).first() or ""
    for tier in Tier.objects.filter(is_public=True).order_by("sort_order", "code"):
        if tier.monthly_base_price <= 0 and tier.price_per_1000_overage <= 0:
            continue
        row, _ = StripeTierPrice.objects.get_or_create(tier=tier)
        if row.product_id:
            stripe_gateway.product_update(product_id=row.product_id, name=f"Moat {tier.name}")
        else:
            row.product_id = stripe_gateway.product_create(
                name=f"Moat {tier.name}", tier_code=tier.code, idempotency_key=f"moat-product-{tier.code}"
            )
            row.save(update_fields=["product_id", "updated_at"])

        cents = _cents(tier.monthly_base_price)
        if not row.base_price_id or row.base_amount_cents != cents:
            old = row.base_price_id
            row.base_price_id = stripe_gateway.price_create_recurring(
                product_id=row.product_id,
                currency=currency,
                unit_amount_cents=cents,
                tier_code=tier.code,
                idempotency_key=f"moat-price-base-{tier.code}-{currency}-{cents}",
            )
            row.base_amount_cents = cents
            row.save(update_fields=["base_price_id", "base_amount_cents", "updated_at"])
            if old:
                stripe_gateway.price_deactivate(price_id=old)

        if tier.overage_allowed and tier.price_per_1000_overage > 0:
            if not meter_id:
                meter_id = stripe_gateway.meter_create(
                    display_name="Moat predictions", event_name=event_name, idempotency_key=f"moat-meter-{event_name}"
                )
            if row.meter_id != meter_id:
                row.meter_id = meter_id
                row.save(update_fields=["meter_id", "updated_at"])
            per_unit = _decimal_str(tier.price_per_1000_overage * 100 / 1000)  # cents per unit
            included = tier.monthly_included_requests
            if (
                not row.metered_price_id
                or row.metered_amount_decimal != per_unit
                or row.metered_included_units != included
            ):
                old = row.metered_price_id
                row.metered_price_id = stripe_gateway.price_create_metered(
                    product_id=row.product_id,
                    currency=currency,
                    meter_id=meter_id,
                    included_units=included,
                    unit_amount_decimal=per_unit,
                    tier_code=tier.code,
                    idempotency_key=f"moat-price-metered-{tier.code}-{currency}-{per_unit}-{included}-{meter_id}",
                )
                row.metered_amount_decimal = per_unit
                row.metered_included_units = included
                row.save(
                    update_fields=["metered_price_id", "metered_amount_decimal", "metered_included_units", "updated_at"]
                )
                if old:
                    stripe_gateway.price_deactivate(price_id=old)
        synced.append(row)
    return synced
