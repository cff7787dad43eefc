"""Every campaign that fits the tabular demo model (its kind's attacks and the retraining campaigns, in its own
units) through a real web server and Celery worker: keys from the portal pages and the onboarding command, every
query over HTTP, and a report whose numbers are the server's."""

import json
from decimal import Decimal

import pytest
from django.db.models import Sum

from accounts.models import User
from redteam import exercise, measurement
from redteam.copies import CopyRecipe
from redteam.model_kinds import EQUATION_SOLVING, INVERSION, LINEAR, LOWD_MEEK
from redteam.report import write_report
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush, querylog_pending
from tests.redteam.live_helpers import attacked_platform
from tiers.models import Tier

# Enough for Lowd-Meek's 93 bisections on 30 features, and for equation solving to measure the public tiers.
BUDGET = 1_400
FEATURES = 30


@pytest.fixture
def platform(registered_digits, registered_breast_cancer, tmp_path, monkeypatch):
    Tier.objects.filter(is_public=True).update(requests_per_minute=100_000, requests_per_hour=1_000_000)
    # Smaller copies than a real thief trains: the measurement's path is the same, in a fraction of the time.
    monkeypatch.setattr(measurement, "LABEL_RECIPE", CopyRecipe((32,), 20, 5e-3, 64, 0.0, 100, 200))
    monkeypatch.setattr(measurement, "LIGHT_RECIPE", CopyRecipe((16,), 10, 5e-3, 64, 1e-4, 100, 200))
    monkeypatch.setattr(measurement, "LOGIT_RECIPE", CopyRecipe((64,), 20, 3e-3, 64, 0.0, 100, 200))
    with attacked_platform(tmp_path) as (base_url, mail):
        yield base_url, mail


def _organization_queries(email: str) -> int:
    organization = User.objects.get(email=email).membership.organization
    rows = QueryLog.objects.filter(organization=organization, endpoint="predict", status=200)
    return rows.aggregate(total=Sum("batch_size"))["total"] or 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_the_tabular_demo_falls_to_equation_solving_on_enterprise_and_the_report_counts_what_the_server_logged(
    platform, tmp_path
):
    base_url, mail = platform
    summary = exercise.run_exercise(
        base_url=base_url, budget=BUDGET, sybil_accounts=2, days=30, mail_dir=mail, max_minutes=5, seed=3,
        models=["breast-cancer"],
    )  # fmt: skip
    while querylog_pending():
        querylog_flush()
    (model,) = summary["models"]
    assert (model["slug"], model["kind"], model["features"], model["classes"]) == (
        "breast-cancer", LINEAR, FEATURES, ["malignant", "benign"],
    )  # fmt: skip
    assert model["pool_rows"] == 86 and model["heldout_rows"] == 142
    tiers = {tier.code: tier for tier in Tier.objects.all()}

    # The retraining campaigns, in the table's own units: every one the digits get, priced as the server logged.
    plans = {(plan.tier, plan.name) for plan in exercise.default_plans("breast-cancer", sybil_accounts=2)}
    assert {(c["tier"], c["name"]) for c in model["campaigns"]} == plans
    for campaign in model["campaigns"]:
        logged = sum(_organization_queries(email) for email in campaign["emails"])
        assert campaign["queries"] == logged == BUDGET, (campaign["name"], campaign["tier"])
        price = tiers[campaign["tier"]].price_per_1000_overage
        assert Decimal(campaign["cost"]) == (price * logged / 1000).quantize(Decimal("0.01"))
        assert [p["queries"] for p in campaign["curve"] if p["checkpoint"]] == [100, 300, 1_000]
        assert all(0.0 <= p["agreement"] <= 1.0 for p in campaign["curve"])
        marks = [p["watermark"] for p in campaign["curve"]]
        if campaign["tier"] == "enterprise":
            assert marks == [None] * len(marks)
        else:
            assert all(mark["watermark_inputs"] >= mark["matches"] >= 0 for mark in marks)
    # Labels on natural rows teach a linear boundary quickly, on every tier.
    assert all(c["final_agreement"] > 0.85 for c in model["campaigns"] if c["name"] in ("natural", "sybil"))
    assert model["baselines"]["public_labels_agreement"] > 0.85
    assert {code for code, tier in model["tiers"].items() if tier["public"]} == {"free", "pro"}

    campaigns = {(c["name"], c["tier"]): c for c in model["kind_campaigns"]}
    assert set(campaigns) == {
        *((EQUATION_SOLVING, tier) for tier in ("enterprise", "pro", "free")),
        (LOWD_MEEK, "enterprise"), (LOWD_MEEK, "free"),
        *((INVERSION, tier) for tier in ("enterprise", "pro", "free")),
    }  # fmt: skip
    for campaign in model["kind_campaigns"]:
        # The numbers are the server's: every answered input is in the query log, priced at the tier's price.
        logged = _organization_queries(campaign["emails"][0])
        assert campaign["queries"] == logged > 0, (campaign["name"], campaign["tier"])
        price = tiers[campaign["tier"]].price_per_1000_overage
        assert Decimal(campaign["cost"]) == (price * logged / 1000).quantize(Decimal("0.01"))
        assert campaign["result"]["queries"] <= logged  # what the attack used, of what it was answered

    # Enterprise: the full model's probability vectors give the logistic regression away within d + 1, verified
    # by one more.
    enterprise = campaigns[(EQUATION_SOLVING, "enterprise")]["result"]
    assert enterprise["verified_exact"] and enterprise["agreement"] == 1.0
    assert enterprise["queries_to_target"] == FEATURES + 1
    assert enterprise["queries"] == FEATURES + 2
    assert enterprise["weight_error"] < 1e-3
    # The public tiers answer top-1 from the defended model, rounded and noised: no exact solution, no weights.
    for tier in ("pro", "free"):
        public = campaigns[(EQUATION_SOLVING, tier)]["result"]
        assert not public["verified_exact"]
        assert public["weight_error"] > 100 * enterprise["weight_error"]
    # Labels alone: the boundary on enterprise.
    boundary = campaigns[(LOWD_MEEK, "enterprise")]["result"]
    assert boundary["agreement"] > 0.98 and boundary["direction_cosine"] > 0.99
    # Inversion on enterprise comes closer to both classes' held-out means than the population's mean is.
    classes = campaigns[(INVERSION, "enterprise")]["result"]["classes"]
    assert [c["class"] for c in classes] == ["malignant", "benign"]
    assert all(c["ratio"] < 0.8 for c in classes)

    report = write_report(summary, tmp_path / "report")
    text = report.read_text()
    assert "## Model `breast-cancer`" in text and "### The attacks for its kind" in text
    assert "](agreement-breast-cancer-free.svg)" in text
    assert json.loads((tmp_path / "report" / "summary.json").read_text()) == summary
