"""Writes of the billing dashboard: spend caps and the usage-alert sweep."""

import logging
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization, Role, User
from billing.dashboard.errors import SpendCapInvalidError
from billing.dashboard.models import ALERT_THRESHOLDS, SpendCap, UsageAlert
from billing.metering.models import UsageDay
from serving.predictions.selectors import billing_period

logger = logging.getLogger(__name__)


def period_key(*, now: datetime) -> str:
    """The billing period containing `now` as YYYYMM (UTC), the key of UsageAlert.period."""
    start, _ = billing_period(now=now)
    return start.strftime("%Y%m")


def crossed_thresholds(*, units: int, included: int) -> list[int]:
    """The alert thresholds (percent of `included`) that `units` has reached, ascending. None when nothing is
    included (a percentage of zero means nothing)."""
    if included <= 0:
        return []
    return [threshold for threshold in ALERT_THRESHOLDS if units * 100 >= included * threshold]


@transaction.atomic
def spend_cap_set(*, organization: Organization, monthly_cap: Decimal | None, actor: User | None) -> None:
    """Set the organization's monthly spend cap in dollars, or clear it with None. The caller checks that the
    actor may (owners only). Raises SpendCapInvalidError for a cap that is not positive (the model's check
    constraint says the same)."""
    if monthly_cap is None:
        SpendCap.objects.filter(organization=organization).delete()
    else:
        if monthly_cap <= 0:
            raise SpendCapInvalidError("A spend cap must be positive.")
        SpendCap.objects.update_or_create(
            organization=organization, defaults={"monthly_cap": monthly_cap, "set_by": actor}
        )
    # Raising or clearing a cap lets the API serve again at once, not at the next sweep.
    organization_id = organization.pk
    transaction.on_commit(lambda: spend_caps_sync(now=timezone.now(), organization_ids=[organization_id]), robust=True)


def spend_caps_sync(*, now: datetime, organization_ids: list[int] | None = None) -> int:
    """Tell the API which organizations are at their spend cap this period (their billable calls get 402), and
    which are not; returns how many are capped. Caps are checked against the invoice preview, which follows the
    usage rows (aggregated every minute), so a cap binds within about two minutes of being reached."""
    from billing.dashboard.selectors import spend_cap_reached_organizations  # selectors import this module
    from serving.quotas.services import organization_set_spend_capped

    period = billing_period(now=now)[0].strftime("%Y%m")
    reached = spend_cap_reached_organizations(now=now)
    candidates = set(SpendCap.objects.values_list("organization_id", flat=True))
    targets = candidates if organization_ids is None else set(organization_ids)
    for organization_id in targets:
        organization_set_spend_capped(organization_id=organization_id, period=period, capped=organization_id in reached)
    return len(reached & targets)


def _alert_email(*, organization: Organization, threshold: int, units: int, included: int) -> tuple[str, str]:
    percent = units * 100 // included
    subject = f"Moat: {organization.name} has used {threshold}% of its included requests"
    if threshold >= 100:
        consequence = (
            "Requests above the included amount are billed as overage."
            if organization.tier.overage_allowed
            else "Your plan has no overage: the API refuses further requests until the period ends."
        )
    else:
        consequence = "You will get another email at the next threshold."
    body = (
        f"Hello,\n\n"
        f"{organization.name} has used {units:,} of the {included:,} inputs included in its "
        f"{organization.tier.name} plan this month ({percent}%), crossing the {threshold}% alert.\n"
        f"{consequence}\n\n"
        f"Usage, the invoice preview and your spend cap: {settings.SITE_URL}/billing/\n"
    )
    return subject, body


def usage_alerts_send(*, now: datetime) -> int:
    """Email each organization's owners when its units this period (the usage rows) cross 50%, 80% or 100% of its
    tier's monthly included requests. Returns how many emails were sent.

    Once per threshold per period: each crossed threshold is recorded as a UsageAlert row under its unique
    constraint, and an insert that hits the constraint (IntegrityError) means the alert is already sent. The rows
    and the email of one organization share a transaction, so two concurrent sweeps cannot both send: the second
    blocks on the first one's uncommitted rows and then finds them. If the email fails the rows roll back and the
    next sweep tries again. When one sweep finds several new thresholds (usage jumped from 40% to 85%), all are
    recorded and one email names the highest.
    """
    start, end = billing_period(now=now)
    period = start.strftime("%Y%m")
    usage = (
        UsageDay.objects.filter(day__gte=start.date(), day__lt=end.date())
        .values("organization_id")
        .annotate(units=Sum("units"))
        .order_by("organization_id")
        .values_list("organization_id", "units")
    )
    sent = 0
    for organization_id, units in usage:
        organization = Organization.objects.select_related("tier").filter(pk=organization_id).first()
        if organization is None:  # usage outlives its organization
            continue
        included = organization.tier.monthly_included_requests
        thresholds = crossed_thresholds(units=units or 0, included=included)
        if not thresholds:
            continue
        sent += _alert_organization(
            organization=organization, period=period, thresholds=thresholds, units=units, now=now
        )
    return sent


@transaction.atomic
def _alert_organization(
    *, organization: Organization, period: str, thresholds: list[int], units: int, now: datetime
) -> int:
    new = []
    for threshold in thresholds:  # ascending, in every worker: no lock-order deadlock between sweeps
        try:
            with transaction.atomic():
                UsageAlert.objects.create(organization=organization, period=period, threshold=threshold, sent_at=now)
        except IntegrityError:
            continue  # already sent this period
        new.append(threshold)
    if not new:
        return 0
    owners = list(
        organization.memberships.filter(role=Role.OWNER, user__is_active=True)
        .order_by("id")
        .values_list("user__email", flat=True)
    )
    if not owners:
        logger.warning("usage alert for organization %s has no owner to email", organization.pk)
        return 0
    subject, body = _alert_email(
        organization=organization, threshold=max(new), units=units, included=organization.tier.monthly_included_requests
    )
    send_mail(subject, body, None, owners)
    return 1
