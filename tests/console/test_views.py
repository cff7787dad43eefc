"""The staff console: 404 for everyone but staff; the revenue page's figures come from the usage rows."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import BillingState, Organization
from billing.metering.models import UsageDay
from tests.conftest import signed_in
from tests.factories import OrganizationFactory, UserFactory, member
from tiers.models import Tier

CONSOLE_URLS = ["/console/", "/console/revenue/"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", CONSOLE_URLS)
def test_non_staff_get_404_on_every_console_url(url, owner):
    assert Client().get(url).status_code == 404
    assert signed_in(owner).get(url).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("url", CONSOLE_URLS)
def test_staff_see_the_console(url):
    assert signed_in(UserFactory(is_staff=True)).get(url).status_code == 200


@pytest.mark.django_db
def test_the_revenue_page_shows_revenue_by_tier_top_users_failed_payments_and_clone_costs():
    pro = Tier.objects.get(code="pro")
    heavy = member(organization=OrganizationFactory(name="Heavy Co", tier=pro)).membership.organization
    light = member(organization=OrganizationFactory(name="Light Co", tier=pro)).membership.organization
    today = timezone.now().date()
    UsageDay.objects.create(organization=heavy, day=today, tier_code="pro", requests=10, units=1_000_500)
    UsageDay.objects.create(organization=light, day=today, tier_code="pro", requests=1, units=20)
    Organization.objects.filter(pk=light.pk).update(billing_state=BillingState.PAST_DUE)

    page = signed_in(UserFactory(is_staff=True)).get("/console/revenue/").content.decode()

    # Two pro organizations: $49 base each, plus 500 inputs of overage at $0.50 per 1,000 = $0.25.
    assert "$98.25" in page
    assert page.index("Heavy Co") < page.index("Light Co")
    assert "1,000,500" in page
    failed = page[page.index('id="failed-payments"') :]
    assert "Light Co" in failed and "Heavy Co" not in failed
    assert "unknown (no red-team report yet)" in page
    assert f"${Decimal('0.0005'):.6f}" in page


@pytest.mark.django_db
def test_the_revenue_page_prices_cloning_from_the_latest_red_team_run():
    from redteam.services import redteam_run_record

    def run(finished_at: str, pro_queries: int | None) -> dict:
        tiers = {"pro": {"queries_to_90": pro_queries, "clone_campaign": "natural"}, "free": {"queries_to_90": 120}}
        # The tabular model: equation solving reached its target on pro; on free no campaign made a clone.
        cancer = {
            "slug": "breast-cancer",
            "tiers": {},
            "kind_campaigns": [
                {
                    "name": "equation_solving",
                    "tier": "pro",
                    "result": {"queries_to_target": 62, "target_agreement": 0.99},
                },
                {"name": "lowd_meek", "tier": "pro", "result": {"queries": 1_240, "agreement": 0.993}},
                {
                    "name": "equation_solving",
                    "tier": "free",
                    "result": {"queries_to_target": None, "target_agreement": 0.99},
                },
                {"name": "inversion", "tier": "free", "result": {"queries": 300}},
                {"name": "lowd_meek", "tier": "free", "result": {"queries": 1_300, "agreement": 0.88}},
            ],
        }
        tree = {"slug": "churn-tree", "tiers": {}, "kind_campaigns": [
            {"name": "path_finding", "tier": "pro", "result": {"queries": 900, "agreement": 0.52}},
        ]}  # fmt: skip
        digits = {"slug": "digits", "tiers": tiers, "campaigns": [], "kind_campaigns": []}
        return {"format": 2, "started_at": finished_at, "finished_at": finished_at,
                "base_url": "http://127.0.0.1:8766", "budget": 10_000, "models": [digits, cancer, tree]}  # fmt: skip

    redteam_run_record(summary=run("2026-11-01T10:00:00+00:00", 9_999))
    redteam_run_record(summary=run("2026-11-20T10:00:00+00:00", 2_345))

    page = signed_in(UserFactory(is_staff=True)).get("/console/revenue/").content.decode()

    clones = page[page.index('id="clone-costs"') :]
    rows = [row for row in clones.split("<tr>")[2:]]
    price = Tier.objects.get(code="pro").price_per_1000_overage / 1000
    assert "2,345" in clones and "9,999" not in clones
    assert f"${price * 2_345:.2f}" in clones  # $1.17: queries x the pro price per query
    assert "unknown" not in clones
    # Every model attacked, per tier, with its cheapest campaign: equation solving beats the boundary search on pro.
    cancer_pro = next(row for row in rows if "breast-cancer" in row and "Pro" in row)
    assert "equation_solving" in cancer_pro and ">62<" in cancer_pro and f"${price * 62:.2f}" in cancer_pro
    tree_pro = next(row for row in rows if "churn-tree" in row)
    assert "not reached" in tree_pro and "more than the run's budget" in tree_pro
    assert not any("Free" in row for row in rows)  # the free tier has no price per query: nothing to clone for


@pytest.mark.django_db
def test_the_red_team_page_shows_each_models_cost_to_clone_detection_and_remediation():
    from abuse.models import AuditAction, AuditEntry
    from redteam.services import redteam_run_record

    staff = UserFactory(is_staff=True)
    client = signed_in(staff)
    assert "No red-team run recorded yet" in client.get("/console/red-team/").content.decode()

    thief = member(email="ops@free-uniform-1.example").membership.organization
    freeze = {"account": "a", "kind": "frozen", "queries": 220, "account_queries": 220, "seconds": 21.0, "detail": ""}
    uniform = {"name": "uniform", "tier": "free", "accounts": 1, "queries": 220,
               "emails": ["ops@free-uniform-1.example"], "first_throttle": None, "first_freeze": freeze}  # fmt: skip
    tiers = {"free": {"code": "free", "name": "Free", "public": True, "queries_to_90": 132, "clone_campaign": "sybil",
                      "cost_to_clone": None, "limits": {"per_day": 10_000}, "recommended_daily_quota": 4}}  # fmt: skip
    section = {"slug": "breast-cancer", "tiers": tiers, "campaigns": [uniform], "kind_campaigns": []}
    redteam_run_record(summary={"format": 2, "started_at": "2026-11-22T13:00:00+00:00",
                                "finished_at": "2026-11-22T13:20:00+00:00", "base_url": "http://127.0.0.1:8766",
                                "budget": 10_000, "models": [section]})  # fmt: skip
    at = datetime.fromisoformat("2026-11-22T13:05:00+00:00")
    AuditEntry.objects.create(created_at=at, action=AuditAction.FREEZE, organization_id=thief.pk,
                              actor_label="abuse jobs", reason="extraction")  # fmt: skip

    page = client.get("/console/red-team/").content.decode()
    block = page[page.index('id="model-breast-cancer"') :]
    assert "<td>Free</td>" in block and ">132<" in block and ">4<" in block and ">10,000<" in block
    assert "220 q, 21 s" in block and "awaiting review (0 of 1 decided)" in block

    AuditEntry.objects.create(created_at=at + timedelta(minutes=45), actor=staff, action=AuditAction.SUSPEND,
                              organization_id=thief.pk, actor_label=staff.email, reason="confirmed")  # fmt: skip
    page = client.get("/console/red-team/").content.decode()
    assert "45 min after the freeze (suspend)" in page
