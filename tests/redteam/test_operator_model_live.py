"""The red team against a model an operator registered (not a demo model), with no code for it: the campaigns that
need no natural data (its attacker has none) run through the real API in the model's own units, are measured
against its registered held-out set, and the report gives it its own section."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from accounts.models import User
from redteam import exercise, measurement
from redteam.copies import CopyRecipe
from redteam.model_kinds import OTHER
from redteam.report import render_markdown
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush, querylog_pending
from tests.operator_models import WINE_SLUG, register_wine_cultivar
from tests.redteam.live_helpers import attacked_platform
from tiers.models import Tier

BUDGET = 300


@pytest.fixture
def platform(tmp_path, monkeypatch):
    register_wine_cultivar(tmp_path, heldout=True)
    Tier.objects.filter(is_public=True).update(requests_per_minute=100_000, requests_per_hour=1_000_000)
    monkeypatch.setattr(measurement, "LABEL_RECIPE", CopyRecipe((32,), 20, 5e-3, 64, 0.0, 100, 200))
    with attacked_platform(tmp_path) as (base_url, mail):
        yield base_url, mail


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_an_operators_model_is_red_teamed_with_no_code_for_it(platform):
    base_url, mail = platform
    assert measurement.attacked_models() == [WINE_SLUG]  # registered with a held-out set: attacked by default

    summary = exercise.run_exercise(
        base_url=base_url, budget=BUDGET, sybil_accounts=2, days=30, mail_dir=mail, max_minutes=3, seed=5
    )
    while querylog_pending():
        querylog_flush()

    (model,) = summary["models"]
    assert (model["slug"], model["kind"], model["features"], model["pool_rows"]) == (WINE_SLUG, OTHER, 13, 0)
    assert model["heldout_rows"] == 68 and model["baselines"]["public_labels_agreement"] is None
    # No natural rows: uniform and adaptive retraining on every tier, nothing of a kind that needs a prior.
    assert {(c["tier"], c["name"]) for c in model["campaigns"]} == {
        (tier, name) for tier in ("enterprise", "pro", "free") for name in ("uniform", "adaptive")
    }
    assert model["kind_campaigns"] == []
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    for campaign in model["campaigns"]:
        organization = User.objects.get(email=campaign["emails"][0]).membership.organization
        logged = QueryLog.objects.filter(organization=organization, endpoint="predict", status=200).aggregate(
            total=Sum("batch_size")
        )["total"]
        assert campaign["queries"] == logged > 0
        assert Decimal(campaign["cost"]) == (tiers[campaign["tier"]].price_per_1000_overage * logged / 1000).quantize(
            Decimal("0.01")
        )
        assert all(0.0 <= point["agreement"] <= 1.0 for point in campaign["curve"])
    assert {code for code, tier in model["tiers"].items() if tier["recommended_daily_quota"] is not None} <= {
        "free", "pro"
    }  # fmt: skip

    text = render_markdown(summary)
    assert f"## Model `{WINE_SLUG}`" in text and "none (it starts from uniform draws" in text
