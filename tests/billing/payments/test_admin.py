"""Staff see webhook events and meter reports in the admin, read-only."""

import pytest
from django.utils import timezone

from billing.payments.models import BillingAccount, Invoice, MeterReport, StripeEvent, StripeTierPrice
from tests.conftest import signed_in
from tests.factories import UserFactory


@pytest.fixture
def staff_client(db):
    return signed_in(UserFactory(is_staff=True, is_superuser=True))


@pytest.mark.parametrize("model", [BillingAccount, StripeEvent, Invoice, MeterReport, StripeTierPrice])
def test_staff_see_every_payments_model(staff_client, model):
    response = staff_client.get(f"/admin/payments/{model._meta.model_name}/")
    assert response.status_code == 200


def test_events_and_meter_reports_are_read_only(staff_client, organization):
    event = StripeEvent.objects.create(
        event_id="evt_admin", type="invoice.paid", stripe_created=timezone.now(), payload={}
    )
    report = MeterReport.objects.create(
        organization=organization, day=timezone.now().date(), units=3, identifier="moat-usage-x"
    )
    for path in (f"/admin/payments/stripeevent/{event.pk}/change/", f"/admin/payments/meterreport/{report.pk}/change/"):
        assert staff_client.get(path).status_code == 200
        staff_client.post(path, {"status": "processed"})
    assert staff_client.get("/admin/payments/stripeevent/add/").status_code == 403
    assert StripeEvent.objects.get().status == "pending"
    assert MeterReport.objects.get().status == "pending"


def test_a_customer_cannot_open_the_admin(owner_client):
    assert owner_client.get("/admin/payments/stripeevent/").status_code == 302
