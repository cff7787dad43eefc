"""An owner opens the billing dashboard in headless Chromium and sees the usage and the invoice preview."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.billing.dashboard.conftest import usage
from tests.conftest import signed_in
from tests.factories import member
from tiers.models import Tier

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_sees_usage_chart_and_invoice_preview(page, live_server, period_start):
    owner = member(email="ada@example.com")
    organization = owner.membership.organization
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    usage(organization, period_start, 1_000_000)
    usage(organization, period_start + timedelta(days=1), 4_000)

    # The session of a signed-in owner (the login page itself is tested in tests/browser and tests/accounts).
    session = signed_in(owner).cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])

    # The strict CSP reports any inline style or script as a console error: the page must cause none.
    csp_violations = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and csp_violations.append(message.text),
    )

    page.goto("/account/")
    page.get_by_role("link", name="Billing").click()
    page.wait_for_url(re.compile(r"/billing/$"))

    assert page.get_by_role("heading", name="Billing", level=1).is_visible()
    assert page.locator("[data-units-used]").inner_text() == "1,004,000"
    assert page.get_by_text("of 1,000,000 included inputs (100%)").is_visible()
    assert page.locator("[data-overage-units]").inner_text() == "4,000"
    assert page.locator("svg.usage-chart-svg").is_visible()
    assert page.locator("rect.usage-bar-nonzero").count() == 2
    assert page.locator(f'rect[data-day="{period_start.isoformat()}"]').get_attribute("data-units") == "1000000"

    preview = page.get_by_role("table").filter(has_text="Pro plan, monthly base price")
    assert preview.get_by_role("cell", name="Overage: inputs above the 1,000,000 included").is_visible()
    assert preview.get_by_role("cell", name="$2.00").is_visible()
    assert page.locator("[data-preview-total]").inner_text() == "$51.00"
    assert page.get_by_text("further use is billed as overage").is_visible()

    # No Stripe here: Manage billing explains why it cannot open the portal.
    page.get_by_role("button", name="Manage billing").click()
    expect(page.get_by_role("alert").filter(has_text="Payments are not configured on this platform.")).to_be_visible()
    assert page.url == f"{live_server.url}/billing/"

    # The spend cap form round-trips through the page.
    page.fill("input[name=monthly_cap]", "75")
    page.get_by_role("button", name="Save spend cap").click()
    expect(page.get_by_role("status").filter(has_text="Spend cap set to $75.00 per month.")).to_be_visible()
    assert page.locator("[data-spend-cap]").inner_text() == "$75.00"
    assert csp_violations == []
