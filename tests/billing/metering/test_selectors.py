from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.metering.models import UsageDay
from billing.metering.selectors import InvoiceLine, invoice_preview, usage_series
from billing.metering.services import usage_aggregate_day
from tests.billing.metering.helpers import log
from tests.factories import OrganizationFactory
from tiers.models import Tier

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
PERIOD = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def organization_on(code: str):
    return OrganizationFactory(tier=Tier.objects.get(code=code))


def used(organization, units: int, *, day: date = date(2026, 11, 5), tier_code: str | None = None) -> None:
    UsageDay.objects.create(
        organization=organization,
        day=day,
        tier_code=tier_code or organization.tier.code,
        requests=max(1, units // 10),
        units=units,
    )


def test_usage_exactly_at_the_included_amount_costs_the_base_price_only(db):
    organization = organization_on("pro")
    used(organization, 400_000, day=date(2026, 11, 1))
    used(organization, 600_000, day=date(2026, 11, 20))

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert (preview.units_used, preview.included_units, preview.overage_units) == (1_000_000, 1_000_000, 0)
    assert preview.lines == (
        InvoiceLine(
            description="Pro plan, monthly base price",
            quantity=1,
            unit_price=Decimal("49.00"),
            amount=Decimal("49.00"),
        ),
    )
    assert preview.total == Decimal("49.00")
    assert (preview.currency, preview.tier_code) == ("usd", "pro")
    assert (preview.period_start, preview.period_end) == PERIOD


@pytest.mark.parametrize(
    ("price_per_1000", "overage", "amount"),
    [
        (Decimal("5.0000"), 1, Decimal("0.01")),  # 0.005 rounds half up to a cent
        (Decimal("0.5000"), 1, Decimal("0.00")),  # 0.0005
        (Decimal("0.5000"), 1_010, Decimal("0.51")),  # 0.505: half up, not to even
        (Decimal("0.5000"), 1_001, Decimal("0.50")),  # 0.5005
        (Decimal("0.5000"), 250_000, Decimal("125.00")),
        (Decimal("0.1234"), 3, Decimal("0.00")),  # 0.0003702
    ],
)
def test_overage_above_the_included_amount_is_priced_per_1000_and_rounded_half_up(db, price_per_1000, overage, amount):
    Tier.objects.filter(code="pro").update(price_per_1000_overage=price_per_1000)
    organization = organization_on("pro")
    used(organization, 1_000_000 + overage)

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert preview.overage_units == overage
    base, overage_line = preview.lines
    assert base.amount == Decimal("49.00")
    assert (overage_line.quantity, overage_line.unit_price, overage_line.amount) == (
        overage,
        price_per_1000 / 1000,
        amount,
    )
    assert preview.total == Decimal("49.00") + amount


def test_the_free_tier_never_charges_overage(organization):
    assert organization.tier.code == "free"
    used(organization, organization.tier.monthly_included_requests + 5_000)

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert preview.overage_units == 0
    assert [line.amount for line in preview.lines] == [Decimal("0.00")]
    assert preview.total == Decimal("0.00")


def test_a_tier_without_overage_charges_none_even_with_a_price(db):
    Tier.objects.filter(code="pro").update(overage_allowed=False)
    organization = organization_on("pro")
    used(organization, 2_000_000)

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert (preview.overage_units, preview.total, len(preview.lines)) == (0, Decimal("49.00"), 1)


def test_an_organization_without_usage_gets_the_base_price_and_a_zero_series(db):
    organization = organization_on("enterprise")

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert (preview.units_used, preview.overage_units, preview.total) == (0, 0, Decimal("2000.00"))
    assert len(preview.daily_units) == 30
    assert preview.daily_units[0] == (date(2026, 11, 1), 0)
    assert preview.daily_units[-1] == (date(2026, 11, 30), 0)
    assert {units for _, units in preview.daily_units} == {0}


def test_only_this_period_and_this_organization_count(db):
    organization, other = organization_on("pro"), organization_on("pro")
    used(organization, 7, day=date(2026, 10, 31))
    used(organization, 11, day=date(2026, 12, 1))
    used(organization, 3, day=date(2026, 11, 1))
    used(organization, 5, day=date(2026, 11, 30))
    used(other, 2_000_000, day=date(2026, 11, 5))

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert preview.units_used == 8
    assert preview.total == Decimal("49.00")
    assert invoice_preview(organization_id=other.pk, now=NOW).overage_units == 1_000_000


def test_usage_under_an_earlier_tier_counts_and_is_priced_with_the_current_tier(db):
    organization = organization_on("pro")
    used(organization, 30_000, day=date(2026, 11, 2), tier_code="free")
    used(organization, 980_000, day=date(2026, 11, 2), tier_code="pro")

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert (preview.units_used, preview.overage_units) == (1_010_000, 10_000)
    assert preview.total == Decimal("54.00")  # 49 + 10,000 / 1,000 x 0.50
    assert preview.daily_units[1] == (date(2026, 11, 2), 1_010_000)


def test_the_period_is_the_utc_calendar_month_of_now(db):
    organization = organization_on("pro")
    used(organization, 4, day=date(2026, 12, 31))

    preview = invoice_preview(organization_id=organization.pk, now=datetime(2026, 12, 31, 23, 59, tzinfo=UTC))

    assert (preview.period_start, preview.period_end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert (preview.units_used, len(preview.daily_units)) == (4, 31)


def test_the_preview_follows_the_query_log_through_aggregation(db):
    organization = organization_on("pro")
    Tier.objects.filter(code="pro").update(monthly_included_requests=10)
    at = datetime(2026, 11, 3, 9, tzinfo=UTC)
    log(organization, at=at, batch_size=10, tier_code="pro")
    log(organization, at=at, batch_size=1, tier_code="pro")
    log(organization, at=at, batch_size=50, tier_code="pro", status=429)
    usage_aggregate_day(day=date(2026, 11, 3))

    preview = invoice_preview(organization_id=organization.pk, now=NOW)

    assert (preview.units_used, preview.overage_units) == (11, 1)
    assert preview.lines[1].amount == Decimal("0.00")  # 1 x 0.0005
    assert preview.total == Decimal("49.00")


def test_usage_series_sums_tiers_per_day_and_fills_missing_days_with_zero(organization):
    other = OrganizationFactory()
    used(organization, 3, day=date(2026, 11, 2), tier_code="free")
    used(organization, 4, day=date(2026, 11, 2), tier_code="pro")
    used(organization, 9, day=date(2026, 11, 4))
    used(organization, 100, day=date(2026, 11, 5))  # the end is exclusive
    used(other, 1_000, day=date(2026, 11, 3))

    series = usage_series(organization_id=organization.pk, start=date(2026, 11, 1), end=date(2026, 11, 5))

    assert series == [
        (date(2026, 11, 1), 0),
        (date(2026, 11, 2), 7),
        (date(2026, 11, 3), 0),
        (date(2026, 11, 4), 9),
    ]
