"""The billing dashboard at /billing/ and its POST endpoints: owners only, no Stripe needed."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Role
from billing.dashboard.models import SpendCap
from billing.dashboard.selectors import CHART_HEIGHT
from tests.billing.dashboard.conftest import usage
from tests.conftest import signed_in
from tests.factories import UserFactory, member
from tiers.models import Tier

pytestmark = pytest.mark.django_db

NOT_CONFIGURED = "Payments are not configured on this platform."
GET_URLS = ["/billing/"]
POST_URLS = [
    ("/billing/upgrade/", {}),
    ("/billing/manage/", {}),
    ("/billing/spend-cap/", {"monthly_cap": "12.34"}),
]


def bars(html: str) -> list[tuple[str, int, float]]:
    """(day, units, height) of every bar of the usage chart."""
    return [
        (day, int(units), float(height))
        for height, day, units in re.findall(
            r'<rect class="usage-bar[^"]*"[^>]* height="([0-9.]+)" data-day="([0-9-]+)" data-units="([0-9]+)"', html
        )
    ]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- Permissions matrix ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", GET_URLS + [url for url, _ in POST_URLS])
def test_anonymous_is_sent_to_login_and_nothing_changes(organization, url):
    client = Client()
    response = client.post(url, {"monthly_cap": "5"}) if url != "/billing/" else client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"
    assert not SpendCap.objects.exists()


@pytest.mark.parametrize("url", GET_URLS)
def test_member_of_the_organization_gets_404(organization, url):
    client = signed_in(member(organization=organization, role=Role.MEMBER))
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(("url", "data"), POST_URLS)
def test_member_of_the_organization_cannot_post(organization, url, data):
    client = signed_in(member(organization=organization, role=Role.MEMBER))
    response = client.post(url, data)
    assert response.status_code == 404
    assert not SpendCap.objects.exists()


@pytest.mark.parametrize("url", GET_URLS)
def test_staff_without_an_organization_gets_404(db, url):
    staff = UserFactory(is_staff=True, is_superuser=True)
    assert signed_in(staff).get(url).status_code == 404


@pytest.mark.parametrize(("url", "data"), POST_URLS)
def test_staff_without_an_organization_cannot_post(db, url, data):
    staff = UserFactory(is_staff=True, is_superuser=True)
    assert signed_in(staff).post(url, data).status_code == 404
    assert not SpendCap.objects.exists()


def test_owner_of_another_organization_sees_only_their_own_numbers(organization, other_owner, period_start):
    """/billing/ has no id in it: another tenant's owner gets their own dashboard, never this one's figures."""
    usage(organization, period_start, 12_345)
    SpendCap.objects.create(organization=organization, monthly_cap=Decimal("777.77"))
    response = signed_in(other_owner).get("/billing/")
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["organization"] == other_owner.membership.organization
    assert organization.name not in html
    assert "12,345" not in html and "777.77" not in html
    assert response.context["preview"].units_used == 0


def test_owner_of_another_organization_sets_only_their_own_cap(organization, other_owner):
    response = signed_in(other_owner).post("/billing/spend-cap/", {"monthly_cap": "5"})
    assert response.status_code == 302
    assert list(SpendCap.objects.values_list("organization_id", "monthly_cap")) == [
        (other_owner.membership.organization_id, Decimal("5.00"))
    ]


def test_owner_gets_the_dashboard(owner_client, organization):
    response = owner_client.get("/billing/")
    assert response.status_code == 200
    assert response.context["organization"] == organization
    assert "<h1>Billing</h1>" in response.content.decode()


def test_billing_nav_link_is_shown_to_owners_only(owner_client, organization):
    assert '<a href="/billing/" aria-current="page">Billing</a>' in owner_client.get("/billing/").content.decode()
    assert '<a href="/billing/">Billing</a>' in owner_client.get("/account/").content.decode()
    member_client = signed_in(member(organization=organization, role=Role.MEMBER))
    assert 'href="/billing/"' not in member_client.get("/account/").content.decode()


def test_dashboard_refuses_other_methods(owner_client):
    assert owner_client.post("/billing/").status_code == 405
    assert owner_client.get("/billing/upgrade/").status_code == 405


# --- Usage, chart and preview ------------------------------------------------------------------------------------


def test_chart_has_one_bar_per_day_matching_usage(owner_client, organization, period_start):
    usage(organization, period_start, 400)
    usage(organization, period_start + timedelta(days=2), 1_000)
    response = owner_client.get("/billing/")
    preview = response.context["preview"]
    days = (preview.period_end.date() - preview.period_start.date()).days
    drawn = bars(response.content.decode())
    assert len(drawn) == days
    assert drawn[0] == (period_start.isoformat(), 400, CHART_HEIGHT * 0.4)
    assert drawn[1] == ((period_start + timedelta(days=1)).isoformat(), 0, 0.0)
    assert drawn[2] == ((period_start + timedelta(days=2)).isoformat(), 1_000, float(CHART_HEIGHT))
    assert sum(units for _, units, _ in drawn) == 1_400


def test_usage_against_included_amount_on_free_tier(owner_client, organization, period_start):
    usage(organization, period_start, 15_000)
    response = owner_client.get("/billing/")
    html = response.content.decode()
    assert '<span class="stat-value" data-units-used>15,000</span>' in html
    assert "of 30,000 included inputs (50%)" in html
    assert '<td class="num" data-preview-total>$0.00</td>' in html
    assert "Free plan, monthly base price" in html
    # Free tier: Upgrade shown, Manage billing not.
    assert ">Upgrade</button>" in html
    assert ">Manage billing</button>" not in html
    assert "No invoices yet." in html


def test_preview_lines_and_total_on_pro_with_overage(owner_client, organization, period_start):
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    usage(organization, period_start, 1_000_000)
    usage(organization, period_start + timedelta(days=1), 3_000)
    html = owner_client.get("/billing/").content.decode()
    assert "Pro plan, monthly base price" in html
    assert "$49.00" in html
    assert "Overage: inputs above the 1,000,000 included" in html
    assert '<td class="num">3,000</td>' in html
    assert "$1.50" in html  # 3,000 x $0.50 / 1,000
    assert '<td class="num" data-preview-total>$50.50</td>' in html
    assert '<span class="stat-value" data-overage-units>3,000</span>' in html
    assert ">Manage billing</button>" in html
    assert ">Upgrade</button>" not in html


def test_usage_banner_shows_the_highest_threshold_crossed(owner_client, organization, period_start):
    assert b"data-usage-banner" not in owner_client.get("/billing/").content
    usage(organization, period_start, 24_000)
    html = owner_client.get("/billing/").content.decode()
    assert "You have used 80% of the 30,000 inputs included this month (24,000 so far)." in html
    usage(organization, period_start + timedelta(days=1), 6_000)
    html = owner_client.get("/billing/").content.decode()
    assert (
        "You have used all 30,000 inputs included this month (30,000 so far): the API refuses further requests "
        "until the period ends." in html
    )


# --- Spend cap -----------------------------------------------------------------------------------------------------


def test_owner_sets_and_clears_the_spend_cap(owner_client, owner, organization):
    response = owner_client.post("/billing/spend-cap/", {"monthly_cap": "1234.5"})
    assert response.status_code == 302 and response["Location"] == "/billing/"
    cap = SpendCap.objects.get()
    assert (cap.organization_id, cap.monthly_cap, cap.set_by_id) == (organization.pk, Decimal("1234.50"), owner.pk)
    page = owner_client.get("/billing/")
    assert "Spend cap set to $1,234.50 per month." in messages_of(page)
    assert "<strong data-spend-cap>$1,234.50</strong>" in page.content.decode()

    owner_client.post("/billing/spend-cap/", {"monthly_cap": "20"})
    assert SpendCap.objects.get().monthly_cap == Decimal("20.00")

    response = owner_client.post("/billing/spend-cap/", {"monthly_cap": ""})
    assert response.status_code == 302
    assert not SpendCap.objects.exists()
    assert "No spend cap is set." in owner_client.get("/billing/").content.decode()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("abc", "Enter a number."),
        ("NaN", "Enter a number."),
        ("Infinity", "Enter a number."),
        ("0", "Ensure this value is greater than or equal to 0.01."),
        ("-5", "Ensure this value is greater than or equal to 0.01."),
        ("1.234", "Ensure that there are no more than 2 decimal places."),
        ("100000000", "Ensure that there are no more than 8 digits before the decimal point."),
        ("1e40", "Ensure that there are no more than 10 digits in total."),
    ],
)
def test_bad_spend_cap_is_a_form_error(owner_client, organization, value, error):
    SpendCap.objects.create(organization=organization, monthly_cap=Decimal("50.00"))
    response = owner_client.post("/billing/spend-cap/", {"monthly_cap": value})
    assert response.status_code == 400
    assert response.context["spend_cap_form"].errors == {"monthly_cap": [error]}
    assert SpendCap.objects.get().monthly_cap == Decimal("50.00")


def test_reached_spend_cap_is_announced(owner_client, organization, period_start):
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    SpendCap.objects.create(organization=organization, monthly_cap=Decimal("49.00"))
    html = owner_client.get("/billing/").content.decode()
    assert "Your spend cap of $49.00 is reached" in html


# --- Upgrade and manage without Stripe -----------------------------------------------------------------------------


def test_upgrade_without_stripe_says_payments_are_not_configured(owner_client, organization, settings):
    assert settings.STRIPE_API_KEY == ""
    response = owner_client.post("/billing/upgrade/")
    assert response.status_code == 302 and response["Location"] == "/billing/"
    assert messages_of(owner_client.get("/billing/")) == [NOT_CONFIGURED]
    organization.refresh_from_db()
    assert organization.tier.code == "free"
    assert mail.outbox == []


def test_manage_without_stripe_says_payments_are_not_configured(owner_client, organization):
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    response = owner_client.post("/billing/manage/")
    assert response.status_code == 302 and response["Location"] == "/billing/"
    assert messages_of(owner_client.get("/billing/")) == [NOT_CONFIGURED]


def test_upgrade_on_a_paid_tier_does_nothing(owner_client, organization):
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    response = owner_client.post("/billing/upgrade/")
    assert response["Location"] == "/billing/"
    assert messages_of(owner_client.get("/billing/")) == ["Your organization is already on the Pro plan."]


# --- Past invoices -------------------------------------------------------------------------------------------------


def test_past_invoices_are_listed_with_links_and_only_the_organizations_own(owner_client, organization, other_owner):
    payments = pytest.importorskip("billing.payments.models")
    payments.Invoice.objects.create(
        organization=organization,
        stripe_invoice_id="in_ours",
        number="MOAT-0001",
        amount_due=4_950,
        amount_paid=4_950,
        currency="usd",
        status="paid",
        hosted_invoice_url="https://invoice.stripe.com/i/acct_1/in_ours",
    )
    payments.Invoice.objects.create(
        organization=other_owner.membership.organization,
        stripe_invoice_id="in_theirs",
        number="RIVAL-0001",
        amount_due=123_456,
        currency="usd",
        status="open",
        hosted_invoice_url="https://invoice.stripe.com/i/acct_1/in_theirs",
    )
    html = owner_client.get("/billing/").content.decode()
    assert (
        '<a href="https://invoice.stripe.com/i/acct_1/in_ours" rel="noopener noreferrer" target="_blank">MOAT-0001</a>'
        in html
    )
    assert "$49.50 USD" in html
    assert "RIVAL-0001" not in html and "in_theirs" not in html and "1,234.56" not in html
    assert "No invoices yet." not in html
