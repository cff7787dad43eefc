"""The staff revenue view's figures: expected revenue by tier this period, the heaviest users, failed payments,
and what cloning each public tier's model would cost an attacker."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from accounts.models import BillingState, Organization
from billing.metering.models import UsageDay
from billing.metering.selectors import invoice_preview
from redteam.selectors import redteam_clone_measurements
from serving.predictions.selectors import billing_period
from tiers.models import Tier


@dataclass(frozen=True)
class TierRevenue:
    tier_code: str
    tier_name: str
    organizations: int
    units: int
    expected_revenue: Decimal


@dataclass(frozen=True)
class TopOrganization:
    organization_id: int
    name: str
    tier_code: str
    units: int


@dataclass(frozen=True)
class CloneCost:
    model_slug: str  # "" when no red-team run has attacked the tier yet
    campaign: str | None
    tier_code: str
    tier_name: str
    price_per_query: Decimal
    queries_to_90_percent: int | None  # None: no red-team measurement yet
    cost: Decimal | None


@dataclass(frozen=True)
class RevenueSummary:
    period_start: datetime
    period_end: datetime
    by_tier: tuple[TierRevenue, ...]
    total: Decimal
    top_organizations: tuple[TopOrganization, ...]
    failed_payments: tuple[Organization, ...]
    clone_costs: tuple[CloneCost, ...]


def revenue_summary(*, now: datetime, top: int = 10) -> RevenueSummary:
    """Everything the staff revenue page shows for the period containing `now` (previews from the usage rows)."""
    start, end = billing_period(now=now)
    tiers = list(Tier.objects.all())
    by_code: dict[str, list[Decimal | int]] = {tier.code: [0, 0, Decimal("0")] for tier in tiers}
    for organization in Organization.objects.select_related("tier"):
        preview = invoice_preview(organization_id=organization.pk, now=now)
        figures = by_code.setdefault(organization.tier.code, [0, 0, Decimal("0")])
        figures[0] += 1
        figures[1] += preview.units_used
        figures[2] += preview.total
    by_tier = tuple(
        TierRevenue(tier.code, tier.name, int(by_code[tier.code][0]), int(by_code[tier.code][1]), by_code[tier.code][2])
        for tier in tiers
    )
    usage = (
        UsageDay.objects.filter(day__gte=start.date(), day__lt=end.date())
        .values("organization_id")
        .annotate(units=Sum("units"))
        .order_by("-units")[:top]
    )
    names = {o.pk: o for o in Organization.objects.filter(pk__in=[row["organization_id"] for row in usage])}
    top_organizations = tuple(
        TopOrganization(
            row["organization_id"],
            names[row["organization_id"]].name,
            names[row["organization_id"]].tier.code,
            row["units"],
        )
        for row in usage
        if row["organization_id"] in names
    )
    failed = tuple(Organization.objects.filter(billing_state=BillingState.PAST_DUE).select_related("tier"))
    measured: dict[str, list] = {}
    for measurement in redteam_clone_measurements():
        measured.setdefault(measurement.tier_code, []).append(measurement)
    clone_costs = []
    for tier in tiers:
        if not tier.is_public or tier.price_per_1000_overage <= 0:
            continue
        price = tier.price_per_1000_overage / Decimal(1000)
        for measurement in sorted(measured.get(tier.code, []), key=lambda m: m.model_slug) or [None]:
            queries = measurement.queries if measurement else None
            clone_costs.append(
                CloneCost(
                    measurement.model_slug if measurement else "",
                    measurement.campaign if measurement else None,
                    tier.code,
                    tier.name,
                    price,
                    queries,
                    (price * queries).quantize(Decimal("0.01")) if queries else None,
                )
            )
    return RevenueSummary(
        period_start=start,
        period_end=end,
        by_tier=by_tier,
        total=sum((row.expected_revenue for row in by_tier), Decimal("0")),
        top_organizations=top_organizations,
        failed_payments=failed,
        clone_costs=tuple(clone_costs),
    )
