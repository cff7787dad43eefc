"""Reads of the billing dashboard: spend caps, the usage-alert banner and the usage chart."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Organization
from billing.dashboard.models import SpendCap
from billing.dashboard.services import crossed_thresholds
from billing.metering.models import UsageDay
from billing.metering.selectors import invoice_preview
from core.charts import bar_boxes
from serving.predictions.selectors import billing_period


def spend_cap_for_organization(*, organization_id: int) -> SpendCap | None:
    return SpendCap.objects.filter(organization_id=organization_id).first()


def spend_cap_reached_organizations(*, now: datetime) -> set[int]:
    """Ids of the organizations whose invoice preview for the period containing `now` is at or above their spend
    cap: the API answers them 402 spend_cap_reached. One preview per capped organization (only those)."""
    reached = set()
    for organization_id, cap in SpendCap.objects.values_list("organization_id", "monthly_cap"):
        try:
            preview = invoice_preview(organization_id=organization_id, now=now)
        except Organization.DoesNotExist:
            continue
        if preview.total >= cap:
            reached.add(organization_id)
    return reached


def active_alert_banner(*, organization_id: int, now: datetime) -> str | None:
    """The dashboard banner for the highest usage-alert threshold the organization's usage has crossed this
    period (from the usage rows and its current tier, so it matches the chart even before the alert email's sweep
    has run), or None below 50%."""
    organization = Organization.objects.select_related("tier").filter(pk=organization_id).first()
    if organization is None:
        return None
    start, end = billing_period(now=now)
    units = (
        UsageDay.objects.filter(organization_id=organization_id, day__gte=start.date(), day__lt=end.date()).aggregate(
            total=Sum("units")
        )["total"]
        or 0
    )
    tier = organization.tier
    thresholds = crossed_thresholds(units=units, included=tier.monthly_included_requests)
    if not thresholds:
        return None
    included = tier.monthly_included_requests
    if thresholds[-1] >= 100:
        after = (
            "further use is billed as overage"
            if tier.overage_allowed
            else "the API refuses further requests until the period ends"
        )
        return f"You have used all {included:,} inputs included this month ({units:,} so far): {after}."
    percent = units * 100 // included
    return f"You have used {percent}% of the {included:,} inputs included this month ({units:,} so far)."


@dataclass(frozen=True)
class Bar:
    day: date
    units: int
    x: float
    y: float
    width: float
    height: float


CHART_WIDTH = 720
CHART_HEIGHT = 160
_GAP = 2


def usage_bars(series: tuple[tuple[date, int], ...] | list[tuple[date, int]], *, scale: int | None = None) -> list[Bar]:
    """One bar per day for the inline SVG chart: heights proportional to the day's units, the largest day (or
    `scale`, when larger) at the full height. Pure: no database access."""
    boxes = bar_boxes([units for _, units in series], width=CHART_WIDTH, height=CHART_HEIGHT, gap=_GAP, scale=scale)
    return [
        Bar(day=day, units=units, x=box.x, y=box.y, width=box.width, height=box.height)
        for (day, units), box in zip(series, boxes, strict=True)
    ]


def spend_cap_reached(*, cap: SpendCap | None, total: Decimal) -> bool:
    return cap is not None and total >= cap.monthly_cap
