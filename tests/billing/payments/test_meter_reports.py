"""Usage reported to the billing meter: one report per organization and closed day, retried without double-billing."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from billing.metering.models import UsageDay
from billing.payments.meter_reports import meter_reports_prepare
from billing.payments.models import BillingAccount, MeterReport
from billing.payments.tasks import report_usage_to_stripe


@pytest.fixture
def customer(fake_stripe, organization) -> BillingAccount:
    return BillingAccount.objects.create(organization=organization, stripe_customer_id="cus_TestMeter01")


def usage(organization, day: date, units: int, tier_code: str = "pro", requests: int = 1) -> UsageDay:
    return UsageDay.objects.create(
        organization=organization, day=day, tier_code=tier_code, requests=requests, units=units
    )


def test_a_failed_send_is_retried_next_run_with_the_same_identifier_and_bills_once(fake_stripe, customer, organization):
    yesterday = timezone.now().date() - timedelta(days=1)
    usage(organization, yesterday, 120)
    identifier = f"moat-usage-{organization.pk}-{yesterday:%Y%m%d}"

    fake_stripe.fail_next(status=500, message="An unknown error occurred")
    assert report_usage_to_stripe() == {"created": 1, "sent": 0, "failed": 1}
    report = MeterReport.objects.get()
    assert (report.identifier, report.status, report.attempts, report.units) == (identifier, "failed", 1, 120)
    assert "An unknown error occurred" in report.last_error

    assert report_usage_to_stripe() == {"created": 0, "sent": 1, "failed": 0}
    report.refresh_from_db()
    assert (report.status, report.attempts, report.last_error) == ("sent", 2, "")
    assert report.sent_at is not None

    assert report_usage_to_stripe() == {"created": 0, "sent": 0, "failed": 0}  # a sent report is final
    sends = fake_stripe.calls("POST", "/v1/billing/meter_events")
    assert len(sends) == 2
    assert {s.params["identifier"] for s in sends} == {identifier}
    assert {s.idempotency_key for s in sends} == {identifier}
    assert sends[1].params["payload[stripe_customer_id]"] == "cus_TestMeter01"
    assert sends[1].params["payload[value]"] == "120"
    assert MeterReport.objects.filter(status="sent").count() == 1


def test_only_closed_days_of_customers_under_a_billed_tier_are_reported(
    fake_stripe, customer, organization, other_owner
):
    today = timezone.now().date()
    usage(organization, today, 5)  # today is not closed
    usage(organization, today - timedelta(days=2), 7)
    usage(organization, today - timedelta(days=2), 3, tier_code="free")  # served free: not billed
    usage(organization, today - timedelta(days=3), 0)  # nothing to bill
    usage(other_owner.membership.organization, today - timedelta(days=2), 9)  # no Stripe customer
    assert meter_reports_prepare() == 1
    report = MeterReport.objects.get()
    assert (report.organization_id, report.day, report.units) == (organization.pk, today - timedelta(days=2), 7)
    assert meter_reports_prepare() == 0


def test_an_unsent_report_follows_a_recomputed_day_but_a_sent_one_is_final(fake_stripe, customer, organization):
    day = timezone.now().date() - timedelta(days=1)
    row = usage(organization, day, 10)
    meter_reports_prepare()
    row.units = 12
    row.save()
    meter_reports_prepare()
    assert MeterReport.objects.get().units == 12
    report_usage_to_stripe()
    row.units = 15
    row.save()
    meter_reports_prepare()
    assert MeterReport.objects.get().units == 12


def test_nothing_is_reported_without_payments(settings, organization):
    settings.STRIPE_API_KEY = ""
    BillingAccount.objects.create(organization=organization, stripe_customer_id="cus_TestMeter02")
    usage(organization, timezone.now().date() - timedelta(days=1), 10)
    assert report_usage_to_stripe() == {"created": 0, "sent": 0, "failed": 0}
    assert not MeterReport.objects.exists()
