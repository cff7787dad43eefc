"""Who the attackers pose as; and the whole exercise against a real web server and Celery worker: keys from the
portal pages (verification emails from the file backend) and the onboarding command, every campaign over HTTP, and a
report whose numbers are the server's: queries as the query log recorded them, costs at the tiers' prices."""

import ipaddress
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from abuse.linking import LinkingPolicy, SignupFact, signup_rings
from accounts.models import SignupRecord, User
from billing.dashboard.revenue import revenue_summary
from redteam import exercise, measure, measurement
from redteam.copies import CopyRecipe
from redteam.model_kinds import ModelKindPlan
from redteam.models import RedTeamRun
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush, querylog_pending
from tests.redteam.live_helpers import attacked_platform
from tiers.models import Tier

BUDGET = 200
FREE_PER_DAY = 150  # below the budget: the single free keys run into their daily limit (a 429 with a long wait)
# What a single free key gets answered that day: its one `GET /v1/usage` costs a unit too, then whole batches of 10.
FREE_ANSWERED = (FREE_PER_DAY - 1) // 10 * 10


@pytest.fixture
def platform(registered_digits, tmp_path, monkeypatch) -> Iterator[tuple[str, str]]:
    # The rate windows are data: opened wide so the test is quick, except free's day, which must bind.
    Tier.objects.filter(is_public=True).update(requests_per_minute=100_000, requests_per_hour=1_000_000)
    Tier.objects.filter(code="free").update(requests_per_day=FREE_PER_DAY)
    # Smaller copies than a real thief trains: the measurement's path is the same, in a fraction of the time.
    monkeypatch.setattr(measurement, "LABEL_RECIPE", CopyRecipe((32,), 20, 5e-3, 64, 0.0, 100, 200))
    monkeypatch.setattr(measurement, "LOGIT_RECIPE", CopyRecipe((64,), 20, 3e-3, 64, 0.0, 100, 200))
    with attacked_platform(tmp_path) as (base_url, mail):
        yield base_url, str(mail)


def _utc_day() -> int:
    return int(time.time()) // 86_400


def _organization_queries(email: str) -> int:
    organization = User.objects.get(email=email).membership.organization
    rows = QueryLog.objects.filter(organization=organization, endpoint="predict", status=200)
    return rows.aggregate(total=Sum("batch_size"))["total"] or 0


def test_independent_campaigns_look_like_strangers_and_each_ring_like_one_script():
    plans = exercise.default_plans("digits", sybil_accounts=4) + exercise.default_plans("table", sybil_accounts=4)
    people = exercise.identities(plans, run_id="r1", seed=5)
    rings = [people[plan] for plan in plans if plan.name == "sybil"]
    for ring in rings:
        assert [p.email.split("@")[0] for p in ring] == ["collector1", "collector2", "collector3", "collector4"]
        assert len({p.email.split("@")[1] for p in ring}) == 1 and len({p.user_agent for p in ring}) == 1
        assert len({ipaddress.ip_network(f"{p.ip}/24", strict=False) for p in ring}) == 1
    # Two rings, two scripts: no address and no /24 in common.
    assert not {p.email for p in rings[0]} & {p.email for p in rings[1]}
    assert rings[0][0].ip.rsplit(".", 1)[0] != rings[1][0].ip.rsplit(".", 1)[0]
    ringers = [p for ring in rings for p in ring]
    strangers = [people[plan][0] for plan in plans if plan.name != "sybil"]
    for attribute in ("email", "user_agent"):
        assert len({getattr(p, attribute) for p in strangers}) == len(strangers)
    networks = {ipaddress.ip_network(f"{p.ip}/24", strict=False) for p in strangers + ringers}
    assert len(networks) == len(strangers) + len(rings)
    assert all(ipaddress.ip_address(p.ip) in ipaddress.ip_network("198.18.0.0/15") for p in strangers + ringers)


def test_the_ring_job_links_each_ring_and_no_stranger():
    # Every campaign of two models signs up within the same minute (a model's two equation-solving campaigns on
    # enterprise among them, each its own company): only the rings may look like one operator.
    kinds = [ModelKindPlan(slug, name, tier) for slug in ("digits", "table") for name in ("equation_solving",
             "inversion") for tier in ("enterprise", "pro", "free")]  # fmt: skip
    plans = [*exercise.default_plans("digits", sybil_accounts=3), *exercise.default_plans("table", sybil_accounts=3)]
    people = exercise.identities([*plans, *kinds], run_id="r1", seed=5)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    facts, owner = [], {}
    for plan, persons in people.items():
        for person in persons:
            owner[len(facts)] = plan
            at = start + timedelta(seconds=len(facts))
            facts.append(SignupFact(len(facts), person.email, person.ip, person.user_agent, at))

    rings = signup_rings(facts, policy=LinkingPolicy())

    assert sorted(len(ring.members) for ring in rings) == [3, 3]
    assert all({owner[member].name for member in ring.members} == {"sybil"} for ring in rings)
    assert all(len({owner[member] for member in ring.members}) == 1 for ring in rings)
    emails = [person.email for persons in people.values() for person in persons]
    assert len(set(emails)) == len(emails)


def test_a_model_its_attacker_has_no_natural_data_for_gets_the_campaigns_that_need_none():
    plans = exercise.default_plans("operator-model", sybil_accounts=3, natural_data=False)
    assert {(plan.tier, plan.name) for plan in plans} == {
        (tier, name) for tier in ("enterprise", "free", "pro") for name in ("uniform", "adaptive")
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_every_campaign_runs_over_http_and_the_report_counts_what_the_server_logged(platform, tmp_path):
    base_url, mail = platform
    out = StringIO()
    day_before = _utc_day()
    call_command(
        "redteam", "--base-url", base_url, "--budget", str(BUDGET), "--accounts", "2", "--report",
        str(tmp_path / "report"), "--mail-dir", mail, "--seed", "11", "--max-minutes", "3", "--model", "digits",
        stdout=out,
    )  # fmt: skip
    # The daily quota counts UTC days (quota.lua's fixed windows): a run across midnight starts a new one.
    same_day = _utc_day() == day_before
    while querylog_pending():
        querylog_flush()

    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert RedTeamRun.objects.get().summary == summary
    (digits,) = summary["models"]
    assert (digits["slug"], digits["features"], digits["pool_rows"], digits["heldout_rows"]) == ("digits", 64, 269, 450)
    plans = {(plan.tier, plan.name) for plan in exercise.default_plans("digits", sybil_accounts=2)}
    assert {(c["tier"], c["name"]) for c in digits["campaigns"]} == plans
    # An MLP is neither linear nor a tree: of the attacks for a kind, only inversion fits it.
    assert {(c["tier"], c["name"]) for c in digits["kind_campaigns"]} == {
        (tier, "inversion") for tier in ("enterprise", "pro", "free")
    }
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    for campaign in digits["kind_campaigns"]:
        assert campaign["queries"] == _organization_queries(campaign["emails"][0]) > 0

    for campaign in digits["campaigns"]:
        logged = sum(_organization_queries(email) for email in campaign["emails"])
        assert campaign["queries"] == logged > 0, campaign["name"]
        price = tiers[campaign["tier"]].price_per_1000_overage
        assert Decimal(campaign["cost"]) == (price * logged / 1000).quantize(Decimal("0.01"))
        curve = campaign["curve"]
        assert curve[-1]["queries"] == campaign["queries"]
        assert campaign["final_agreement"] == curve[-1]["agreement"]
        assert all(0.0 <= point["agreement"] <= 1.0 for point in curve)
        assert campaign["queries_to_90"] == measure.queries_to_reach([(p["queries"], p["agreement"]) for p in curve])
        single_free = campaign["tier"] == "free" and campaign["accounts"] == 1
        if single_free and not same_day:
            assert FREE_ANSWERED <= campaign["queries"] <= BUDGET
        else:
            assert campaign["queries"] == (FREE_ANSWERED if single_free else BUDGET)
        if single_free and same_day:
            (event,) = campaign["events"]
            assert (event["kind"], event["queries"]) == ("limit_reached", FREE_ANSWERED)
        if campaign["tier"] == "enterprise":
            assert all(point["watermark"] is None for point in curve)
        else:
            marks = [point["watermark"] for point in curve]
            assert all(mark["watermark_inputs"] >= mark["matches"] >= 0 and mark["regions"] >= 0 for mark in marks)

    # The tiers' figures: the cheapest clone and its price, as the console will read them.
    for code, tier in digits["tiers"].items():
        reached = [c["queries_to_90"] for c in digits["campaigns"] if c["tier"] == code and c["queries_to_90"]]
        assert tier["queries_to_90"] == (min(reached) if reached else None)
        assert tier["limits"]["per_day"] == tiers[code].requests_per_day
    pro = digits["tiers"]["pro"]
    clone = {row.tier_code: row for row in revenue_summary(now=RedTeamRun.objects.get().finished_at).clone_costs}
    assert clone["pro"].queries_to_90_percent == pro["queries_to_90"]

    # The sybil ring signed up through the trusted proxy from one public /24; the others each from their own.
    ring = next(c for c in digits["campaigns"] if c["name"] == "sybil")
    ring_ips = {SignupRecord.objects.get(email=email).ip_address for email in ring["emails"]}
    assert len({ipaddress.ip_network(f"{ip}/24", strict=False) for ip in ring_ips}) == 1 and len(ring_ips) == 2
    others = [c["emails"][0] for c in digits["campaigns"] if c["tier"] == "free" and c["name"] != "sybil"]
    other_ips = {SignupRecord.objects.get(email=email).ip_address for email in others}
    assert len(other_ips) == len(others) and not any(ipaddress.ip_address(ip).is_loopback for ip in other_ips)

    report = (tmp_path / "report" / "report.md").read_text()
    for campaign in digits["campaigns"]:
        assert f"| {campaign['name']} | {campaign['accounts']}" in report
    for code in ("free", "pro", "enterprise"):
        ET.fromstring((tmp_path / "report" / f"agreement-digits-{code}.svg").read_text())  # noqa: S314 - our own
    assert "Report:" in out.getvalue()
