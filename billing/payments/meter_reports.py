"""Usage of closed days reported to the Stripe billing meter under stable identifiers: a sent report is final."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.payments import stripe_gateway
from billing.payments.models import (
    BillingAccount,
    MeterReport,
    MeterReportStatus,
    StripeTierPrice,
)
from billing.payments.services import PAID_TIER_CODE

logger = logging.getLogger(__name__)

# Stripe accepts meter events up to 35 days old; closed days older than this are not (re)reported.
METER_REPORT_LOOKBACK_DAYS = 30


def meter_report_identifier(*, organization_id: int, day: date) -> str:
    return f"moat-usage-{organization_id}-{day:%Y%m%d}"


def meter_reports_prepare(*, today: date | None = None) -> int:
    """Create a MeterReport (get_or_create under its unique identifier) for each organization with a Stripe customer
    and each closed UTC day of the lookback window with billable units under a tier that has a metered price.
    Unsent reports take the day's current units (usage rows are recomputed); sent ones are final. Returns how many
    reports were created."""
    from billing.metering.models import UsageDay

    today = today or timezone.now().date()
    billed_tiers = list(StripeTierPrice.objects.exclude(metered_price_id="").values_list("tier__code", flat=True)) or [
        PAID_TIER_CODE
    ]
    customers = BillingAccount.objects.filter(stripe_customer_id__isnull=False).values_list(
        "organization_id", flat=True
    )
    usage = (
        UsageDay.objects.filter(
            organization_id__in=customers,
            tier_code__in=billed_tiers,
            day__lt=today,
            day__gte=today - timedelta(days=METER_REPORT_LOOKBACK_DAYS),
        )
        .values("organization_id", "day")
        .annotate(total=Sum("units"))
    )
    created_count = 0
    for row in usage:
        if not row["total"]:
            continue
        report, created = MeterReport.objects.get_or_create(
            identifier=meter_report_identifier(organization_id=row["organization_id"], day=row["day"]),
            defaults={"organization_id": row["organization_id"], "day": row["day"], "units": row["total"]},
        )
        if created:
            created_count += 1
        elif report.units != row["total"]:
            MeterReport.objects.filter(pk=report.pk).exclude(status=MeterReportStatus.SENT).update(units=row["total"])
    return created_count


def meter_reports_send() -> tuple[int, int]:
    """Send every pending or failed report with its identifier as Stripe's event identifier (a retry never bills
    twice), mark it sent, or record the failure (attempts, last_error) for the next run. Returns (sent, failed)."""
    sent = failed = 0
    pks = MeterReport.objects.filter(status__in=[MeterReportStatus.PENDING, MeterReportStatus.FAILED]).values_list(
        "pk", flat=True
    )
    for pk in list(pks):
        # The row lock is held over the call to Stripe so two runs never send the same report at once (Stripe would
        # deduplicate it anyway, by identifier); skip_locked lets a second run move on.
        with transaction.atomic():
            report = (
                MeterReport.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status__in=[MeterReportStatus.PENDING, MeterReportStatus.FAILED])
                .first()
            )
            if report is None:
                continue
            account = BillingAccount.objects.filter(organization_id=report.organization_id).first()
            report.attempts += 1
            try:
                if account is None or not account.stripe_customer_id:
                    raise stripe_gateway.PaymentGatewayError("The organization has no Stripe customer.", retryable=True)
                stripe_gateway.meter_event_create(
                    event_name=settings.STRIPE_METER_EVENT_NAME,
                    customer_id=account.stripe_customer_id,
                    value=report.units,
                    identifier=report.identifier,
                    # The last second of the day: inside the billing period the day's usage belongs to.
                    timestamp=min(datetime.combine(report.day, time(23, 59, 59), tzinfo=UTC), timezone.now()),
                )
            except stripe_gateway.PaymentGatewayError as exc:
                report.status = MeterReportStatus.FAILED
                report.last_error = exc.message[:4000]
                report.save(update_fields=["status", "attempts", "last_error"])
                failed += 1
                continue
            report.status = MeterReportStatus.SENT
            report.sent_at = timezone.now()
            report.last_error = ""
            report.save(update_fields=["status", "attempts", "last_error", "sent_at"])
            sent += 1
    return sent, failed
