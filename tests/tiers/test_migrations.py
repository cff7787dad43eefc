"""The tiers' seeded data: what the migrations leave in a new database."""

import importlib

import pytest
from django.apps import apps

from abuse.simulation.served import TIERS
from serving.defenses import DefenseConfig
from tiers.models import Tier

pytestmark = pytest.mark.django_db

region_watermark = importlib.import_module("tiers.migrations.0005_region_watermark_fraction")


@pytest.mark.parametrize("code", ["free", "pro"])
def test_a_new_database_serves_the_public_tiers_with_the_defenses_the_simulation_models(code):
    served = DefenseConfig.from_dict(Tier.objects.get(code=code).defenses, n_classes=10)

    assert served == TIERS[code].defenses
    assert served.watermark_fraction == DefenseConfig().watermark_fraction == 0.015


def test_the_region_watermark_migration_moves_only_the_seeded_fraction_and_reverses():
    Tier.objects.filter(code="free").update(
        defenses={**Tier.objects.get(code="free").defenses, "watermark_fraction": 0.005}
    )
    Tier.objects.filter(code="pro").update(
        defenses={**Tier.objects.get(code="pro").defenses, "watermark_fraction": 0.02}
    )

    region_watermark.raise_fraction(apps, None)

    assert Tier.objects.get(code="free").defenses["watermark_fraction"] == 0.015
    assert Tier.objects.get(code="pro").defenses["watermark_fraction"] == 0.02  # an operator's choice stays
    assert Tier.objects.get(code="enterprise").defenses == {}

    region_watermark.restore_fraction(apps, None)

    assert Tier.objects.get(code="free").defenses["watermark_fraction"] == 0.005
    assert Tier.objects.get(code="pro").defenses["watermark_fraction"] == 0.02


def test_transactional_tests_start_from_the_tiers_the_migrations_leave():
    """The suite's re-seed after a transactional test empties the tables must give back the migrated tiers (it once
    left out the 1.5% watermark migration, so a test's second live server watermarked at 0.5%)."""
    from tests.conftest import reseed_migration_data

    migrated = {tier.code: (tier.defenses, tier.requests_per_minute) for tier in Tier.objects.all()}
    Tier.objects.all().delete()

    reseed_migration_data()

    assert {tier.code: (tier.defenses, tier.requests_per_minute) for tier in Tier.objects.all()} == migrated
