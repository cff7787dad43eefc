"""A reviewer works the review queue in headless Chromium: opens the riskiest organization, freezes its keys with
a reason, then unfreezes them, and the keys, the page and the audit log follow each step."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from abuse.models import AuditEntry, RiskState
from apikeys.models import ApiKey, KeyState
from tests.conftest import signed_in
from tests.console.conftest import make_reviewer
from tests.factories import OrganizationFactory, raw_key_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_freezes_and_unfreezes_an_organization_from_the_queue(page, live_server):
    reviewer = make_reviewer()
    suspect = OrganizationFactory(name="Suspicious Labs")
    raw_key_for(suspect, name="harvester")
    raw_key_for(suspect, name="backup")
    RiskState.objects.create(
        organization=suspect, score=92, previous_score=41, level="freeze",
        top_reasons=["Inputs sweep the decision boundary"],
    )  # fmt: skip
    RiskState.objects.create(organization=OrganizationFactory(name="Honest Co"), score=12, previous_score=10)

    # The session of a signed-in reviewer (the login page itself is tested in tests/browser and tests/accounts).
    session = signed_in(reviewer).cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    # The strict CSP reports any inline style or script as a console error: the console must cause none.
    csp_violations = []
    page.on("console", lambda m: "Content Security Policy" in m.text and csp_violations.append(m.text))

    page.goto("/console/reviews/")
    rows = page.locator("table.review-queue tbody tr")
    expect(rows.first).to_contain_text("Suspicious Labs")
    expect(rows.first).to_contain_text("Inputs sweep the decision boundary")
    expect(rows.first.locator("[data-keys]")).to_have_text("2 / 0 / 0")
    rows.first.get_by_role("link", name="Suspicious Labs").click()
    page.wait_for_url(re.compile(rf"/console/organizations/{suspect.pk}/$"))
    expect(page.get_by_role("heading", name="Suspicious Labs", level=1)).to_be_visible()
    expect(page.locator("[data-key-state=active]")).to_have_count(2)

    freeze = page.locator("form[data-action=freeze]")
    freeze.get_by_label("Reason").fill("Boundary sweep: 40,000 inputs in an hour.")
    freeze.get_by_role("button", name="Freeze keys").click()
    page.wait_for_url(re.compile(rf"/console/organizations/{suspect.pk}/$"))

    expect(page.get_by_role("status").filter(has_text="Keys frozen")).to_be_visible()
    assert set(ApiKey.objects.filter(organization=suspect).values_list("state", flat=True)) == {KeyState.FROZEN}
    expect(page.locator("[data-key-state=frozen]")).to_have_count(2)
    expect(page.locator("#keys")).to_contain_text("Boundary sweep: 40,000 inputs in an hour.")
    audit = page.locator("#audit tbody tr[data-audit-action]")
    expect(audit).to_have_count(1)
    expect(audit.first).to_contain_text("Keys frozen")
    expect(audit.first).to_contain_text("reviewer@moat.example")

    unfreeze = page.locator("form[data-action=unfreeze]")
    unfreeze.get_by_label("Reason").fill("Customer is a university lab; confirmed by phone.")
    unfreeze.get_by_role("button", name="Unfreeze keys").click()
    page.wait_for_url(re.compile(rf"/console/organizations/{suspect.pk}/$"))

    expect(page.get_by_role("status").filter(has_text="Keys unfrozen")).to_be_visible()
    assert set(ApiKey.objects.filter(organization=suspect).values_list("state", flat=True)) == {KeyState.ACTIVE}
    expect(page.locator("[data-key-state=active]")).to_have_count(2)
    expect(audit).to_have_count(2)
    expect(audit.first).to_contain_text("Keys unfrozen")
    expect(audit.first).to_contain_text("Customer is a university lab; confirmed by phone.")
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor_id", "reason")) == [
        ("freeze", reviewer.pk, "Boundary sweep: 40,000 inputs in an hour."),
        ("unfreeze", reviewer.pk, "Customer is a university lab; confirmed by phone."),
    ]

    page.get_by_role("link", name="Audit log").first.click()
    page.wait_for_url(re.compile(r"/console/audit/$"))
    expect(page.locator("tbody tr[data-audit-action]")).to_have_count(2)
    assert csp_violations == []
