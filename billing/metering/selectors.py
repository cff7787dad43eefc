"""Reads of usage metering: usage series and the local invoice preview (no Stripe needed)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Sum

from accounts.models import Organization
from billing.metering.models import UsageDay
from serving.predictions.selectors import billing_period

CURRENCY = "usd"
_CENT = Decimal("0.01")


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: int
    unit_price: Decimal  # unrounded: an overage unit costs a fraction of a cent
    amount: Decimal  # rounded to cents, half up


@dataclass(frozen=True)
class InvoicePreview:
    organization_id: int
    tier_code: str
    tier_name: str
    currency: str
    period_start: datetime
    period_end: datetime  # exclusive
    units_used: int
    included_units: int
    overage_units: int  # billed overage: 0 when the tier does not allow overage
    lines: tuple[InvoiceLine, ...]
    total: Decimal
    daily_units: tuple[tuple[date, int], ...]  # every day of the period, zero-filled


def usage_series(*, organization_id: int, start: date, end: date) -> list[tuple[date, int]]:
    """Units per UTC day in [start, end), all tiers together, with a 0 for every day without usage."""
    per_day = dict(
        UsageDay.objects.filter(organization_id=organization_id, day__gte=start, day__lt=end)
        .values("day")
        .annotate(total=Sum("units"))
        .order_by()
        .values_list("day", "total")
    )
    return [(start + timedelta(days=n), per_day.get(start + timedelta(days=n), 0)) for n in range((end - start).days)]


def invoice_preview(*, organization_id: int, now: datetime) -> InvoicePreview:
    """What the organization's invoice for the calendar month (UTC) containing `now` would be so far, computed
    from the usage rows (as fresh as the last aggregation, about a minute).

    Priced with the organization's *current* tier for the whole period: the base price, plus, when the tier allows
    overage, max(0, units - included) / 1000 x price per 1,000, each line rounded half-up to cents. Usage under
    another tier earlier in the month counts towards the units (no proration in the preview). Raises
    Organization.DoesNotExist for an unknown organization.
    """
    organization = Organization.objects.select_related("tier").get(pk=organization_id)
    tier = organization.tier
    period_start, period_end = billing_period(now=now)
    series = usage_series(organization_id=organization_id, start=period_start.date(), end=period_end.date())
    units_used = sum(units for _, units in series)
    included = tier.monthly_included_requests
    overage_units = max(0, units_used - included) if tier.overage_allowed else 0

    lines = [
        InvoiceLine(
            description=f"{tier.name} plan, monthly base price",
            quantity=1,
            unit_price=tier.monthly_base_price,
            amount=_money(tier.monthly_base_price),
        )
    ]
    if overage_units:
        unit_price = tier.price_per_1000_overage / 1000
        lines.append(
            InvoiceLine(
                description=f"Overage: inputs above the {included:,} included",
                quantity=overage_units,
                unit_price=unit_price,
                amount=_money(overage_units * tier.price_per_1000_overage / 1000),
            )
        )
    return InvoicePreview(
        organization_id=organization_id,
        tier_code=tier.code,
        tier_name=tier.name,
        currency=CURRENCY,
        period_start=period_start,
        period_end=period_end,
        units_used=units_used,
        included_units=included,
        overage_units=overage_units,
        lines=tuple(lines),
        total=sum((line.amount for line in lines), Decimal("0.00")),
        daily_units=tuple(series),
    )
