"""Customers, Checkout and portal sessions, the grace period, price sync and the signal after sign-up."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import BillingState
from billing.payments.models import BillingAccount, Invoice, StripeTierPrice
from billing.payments.prices import stripe_prices_sync
from billing.payments.selectors import invoices_for_organization
from billing.payments.services import (
    PaymentsNotConfiguredError,
    checkout_session_start,
    grace_periods_end,
    portal_session_start,
)
from billing.payments.stripe_gateway import PaymentGatewayError
from billing.payments.tasks import create_stripe_customer, end_expired_grace_periods
from tests.factories import OrganizationFactory
from tiers.models import Tier

# --- Customers ------------------------------------------------------------------------------------------------


def test_two_customer_task_runs_make_one_stripe_create_with_the_idempotency_key(fake_stripe, organization, owner):
    first = create_stripe_customer(organization.pk)
    second = create_stripe_customer(organization.pk)
    assert first == second
    assert first.startswith("cus_")
    creates = fake_stripe.calls("POST", "/v1/customers")
    assert len(creates) == 1
    assert creates[0].idempotency_key == f"moat-customer-{organization.pk}"
    assert creates[0].params == {
        "name": organization.name,
        "email": owner.email,
        "metadata[organization_id]": str(organization.pk),
    }
    assert BillingAccount.objects.get(organization=organization).stripe_customer_id == first


def test_the_customer_task_exits_cleanly_for_a_missing_organization(fake_stripe, db):
    assert create_stripe_customer(987654) is None
    assert fake_stripe.requests == []


def test_a_card_error_is_not_retryable_and_a_server_error_is(fake_stripe, organization):
    from billing.payments.services import billing_account_ensure_customer

    fake_stripe.fail_next(status=400, error_type="invalid_request_error", message="Invalid email")
    with pytest.raises(PaymentGatewayError) as not_retryable:
        billing_account_ensure_customer(organization_id=organization.pk)
    assert not_retryable.value.retryable is False
    fake_stripe.fail_next(status=500)
    with pytest.raises(PaymentGatewayError) as retryable:
        billing_account_ensure_customer(organization_id=organization.pk)
    assert retryable.value.retryable is True
    assert BillingAccount.objects.get(organization=organization).stripe_customer_id is None


def test_a_new_organization_gets_a_customer_after_commit_when_payments_are_enabled(
    fake_stripe, settings, db, django_capture_on_commit_callbacks
):
    settings.BILLING_PAYMENTS_ENABLED = True
    with django_capture_on_commit_callbacks(execute=True):
        org = OrganizationFactory()
    assert BillingAccount.objects.get(organization=org).stripe_customer_id.startswith("cus_")
    assert [r.idempotency_key for r in fake_stripe.calls("POST", "/v1/customers")] == [f"moat-customer-{org.pk}"]


def test_no_customer_is_created_when_payments_are_disabled(
    fake_stripe, settings, db, django_capture_on_commit_callbacks
):
    settings.BILLING_PAYMENTS_ENABLED = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        org = OrganizationFactory()
    org.save()  # an update never enqueues either
    assert callbacks == []
    assert fake_stripe.requests == []


# --- Checkout and portal --------------------------------------------------------------------------------------


@pytest.fixture
def synced_pro(fake_stripe, db) -> StripeTierPrice:
    return StripeTierPrice.objects.create(
        tier=Tier.objects.get(code="pro"),
        product_id="prod_TestPro",
        base_price_id="price_TestBase",
        metered_price_id="price_TestMetered",
        meter_id="mtr_test_1",
    )


def test_checkout_returns_the_session_url_and_creates_the_customer_first(fake_stripe, synced_pro, organization):
    url = checkout_session_start(
        organization=organization,
        success_url="https://moat.test/billing/?ok=1",
        cancel_url="https://moat.test/billing/",
    )
    (customer,) = fake_stripe.calls("POST", "/v1/customers")
    (session,) = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    customer_id = BillingAccount.objects.get(organization=organization).stripe_customer_id
    assert session.params == {
        "mode": "subscription",
        "customer": customer_id,
        "line_items[0][price]": "price_TestBase",
        "line_items[0][quantity]": "1",
        "line_items[1][price]": "price_TestMetered",
        "success_url": "https://moat.test/billing/?ok=1",
        "cancel_url": "https://moat.test/billing/",
        "client_reference_id": str(organization.pk),
        "subscription_data[metadata][organization_id]": str(organization.pk),
    }
    assert session.idempotency_key.startswith(f"moat-checkout-{organization.pk}-price_TestBase-price_TestMetered-")
    assert fake_stripe.requests.index(customer) < fake_stripe.requests.index(session)


def test_a_double_click_opens_one_checkout_session(fake_stripe, synced_pro, organization):
    urls = {
        checkout_session_start(
            organization=organization, success_url="https://moat.test/ok", cancel_url="https://moat.test/no"
        )
        for _ in range(2)
    }
    assert len(urls) == 1


def test_portal_returns_the_session_url(fake_stripe, organization):
    BillingAccount.objects.create(organization=organization, stripe_customer_id="cus_TestExisting")
    url = portal_session_start(organization=organization, return_url="https://moat.test/billing/")
    assert url.startswith("https://billing.stripe.com/p/session/test_")
    (session,) = fake_stripe.calls("POST", "/v1/billing_portal/sessions")
    assert session.params == {"customer": "cus_TestExisting", "return_url": "https://moat.test/billing/"}
    assert fake_stripe.calls("POST", "/v1/customers") == []


def test_without_an_api_key_payments_are_not_configured(settings, organization):
    settings.STRIPE_API_KEY = ""
    for start in (
        lambda: checkout_session_start(organization=organization, success_url="https://x/", cancel_url="https://x/"),
        lambda: portal_session_start(organization=organization, return_url="https://x/"),
    ):
        with pytest.raises(PaymentsNotConfiguredError) as error:
            start()
        assert error.value.message == "Payments are not configured on this platform."
        assert error.value.code == "payments_not_configured"
    assert not BillingAccount.objects.exists()


def test_checkout_before_the_prices_are_synced_is_not_configured(fake_stripe, organization):
    with pytest.raises(PaymentsNotConfiguredError):
        checkout_session_start(organization=organization, success_url="https://x/", cancel_url="https://x/")
    assert fake_stripe.requests == []


# --- Grace period ---------------------------------------------------------------------------------------------


def _past_due(organization, *, grace_until):
    organization.tier = Tier.objects.get(code="pro")
    organization.billing_state = BillingState.PAST_DUE
    organization.save(update_fields=["tier", "billing_state"])
    return BillingAccount.objects.create(
        organization=organization, stripe_customer_id="cus_TestGrace", grace_until=grace_until
    )


def test_an_expired_grace_period_moves_the_organization_to_free(organization):
    account = _past_due(organization, grace_until=timezone.now() - timedelta(seconds=1))
    assert end_expired_grace_periods() == 1
    organization.refresh_from_db()
    account.refresh_from_db()
    assert (organization.tier.code, organization.billing_state, account.grace_until) == ("free", "past_due", None)
    assert end_expired_grace_periods() == 0


def test_a_running_grace_period_keeps_the_paid_tier(organization):
    _past_due(organization, grace_until=timezone.now() + timedelta(hours=1))
    assert grace_periods_end() == 0
    organization.refresh_from_db()
    assert organization.tier.code == "pro"


def test_the_grace_period_end_refreshes_the_api_key_snapshot(organization, monkeypatch):
    refreshed = []
    import apikeys.signals

    monkeypatch.setattr(
        apikeys.signals,
        "apikey_cache_refresh_for_organization",
        lambda organization_id: refreshed.append(organization_id),
    )
    _past_due(organization, grace_until=timezone.now() - timedelta(seconds=1))
    refreshed.clear()
    grace_periods_end()
    assert refreshed == [organization.pk]


# --- Prices ---------------------------------------------------------------------------------------------------


def test_sync_creates_product_prices_and_meter_with_idempotency_keys(fake_stripe, settings, db):
    settings.STRIPE_METER_EVENT_NAME = "moat_predictions"
    pro = Tier.objects.get(code="pro")
    pro.overage_allowed = True
    pro.save()
    call_command("sync_stripe_prices", stdout=open("/dev/null", "w"))  # noqa: SIM115
    keys = [(r.path, r.idempotency_key) for r in fake_stripe.requests]
    row = StripeTierPrice.objects.get()
    assert row.tier == pro
    assert keys == [
        ("/v1/products", "moat-product-pro"),
        ("/v1/prices", "moat-price-base-pro-usd-4900"),
        ("/v1/billing/meters", "moat-meter-moat_predictions"),
        ("/v1/prices", f"moat-price-metered-pro-usd-0.05-{pro.monthly_included_requests}-{row.meter_id}"),
    ]
    base, meter, metered = fake_stripe.requests[1], fake_stripe.requests[2], fake_stripe.requests[3]
    assert base.params["unit_amount"] == "4900"
    assert base.params["recurring[interval]"] == "month"
    assert meter.params["event_name"] == "moat_predictions"
    assert meter.params["default_aggregation[formula]"] == "sum"
    assert metered.params["recurring[meter]"] == row.meter_id
    assert metered.params["recurring[usage_type]"] == "metered"
    assert metered.params["tiers[0][up_to]"] == str(pro.monthly_included_requests)
    assert metered.params["tiers[1][unit_amount_decimal]"] == "0.05"
    assert (row.product_id[:5], row.base_price_id[:6], row.metered_price_id[:6], row.meter_id[:4]) == (
        "prod_",
        "price_",
        "price_",
        "mtr_",
    )


def test_sync_is_idempotent_and_recreates_only_a_changed_price(fake_stripe, db):
    pro = Tier.objects.get(code="pro")
    pro.overage_allowed = True
    pro.save()
    stripe_prices_sync()
    first = StripeTierPrice.objects.get()
    fake_stripe.requests.clear()
    stripe_prices_sync()
    assert [(r.method, r.path) for r in fake_stripe.requests] == [("POST", f"/v1/products/{first.product_id}")]

    pro.monthly_base_price = Decimal("59.00")
    pro.save()
    fake_stripe.requests.clear()
    stripe_prices_sync()
    second = StripeTierPrice.objects.get()
    assert [r.path for r in fake_stripe.requests] == [
        f"/v1/products/{first.product_id}",
        "/v1/prices",
        f"/v1/prices/{first.base_price_id}",
    ]
    assert fake_stripe.requests[1].idempotency_key == "moat-price-base-pro-usd-5900"
    assert fake_stripe.requests[2].params == {"active": "false"}
    assert second.base_price_id != first.base_price_id
    assert second.metered_price_id == first.metered_price_id


def test_sync_skips_free_and_non_public_tiers(fake_stripe, db):
    stripe_prices_sync()
    assert list(StripeTierPrice.objects.values_list("tier__code", flat=True)) == ["pro"]


# --- Selector -------------------------------------------------------------------------------------------------


def test_invoices_for_organization_are_scoped_and_newest_first(organization, other_owner):
    now = timezone.now()
    old = Invoice.objects.create(
        organization=organization, stripe_invoice_id="in_old", created_at=now - timedelta(days=31)
    )
    new = Invoice.objects.create(organization=organization, stripe_invoice_id="in_new", created_at=now)
    Invoice.objects.create(
        organization=other_owner.membership.organization, stripe_invoice_id="in_other", created_at=now
    )
    assert list(invoices_for_organization(organization_id=organization.pk)) == [new, old]
