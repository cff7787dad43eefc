"""Seed the three pricing tiers. Staff edit them in the admin afterwards; this never overwrites their edits."""

from decimal import Decimal

from django.db import migrations

SEED = [
    {
        "code": "free",
        "name": "Free",
        "sort_order": 0,
        "is_public": True,
        "model_variant": "defended",
        "description": "Evaluate the API. Served by the defended model; a hard monthly stop.",
        "requests_per_minute": 60,
        "requests_per_hour": 1_000,
        "requests_per_day": 10_000,
        "monthly_included_requests": 30_000,
        "overage_allowed": False,
        "price_per_1000_overage": Decimal("0"),
        "monthly_base_price": Decimal("0"),
        "max_batch_size": 10,
        "output_fields": ["label", "confidence"],
    },
    {
        "code": "pro",
        "name": "Pro",
        "sort_order": 1,
        "is_public": True,
        "model_variant": "defended",
        "description": "Production use. Served by the defended model; overage billed per 1,000 requests.",
        "requests_per_minute": 600,
        "requests_per_hour": 20_000,
        "requests_per_day": 200_000,
        "monthly_included_requests": 1_000_000,
        "overage_allowed": True,
        "price_per_1000_overage": Decimal("0.5000"),
        "monthly_base_price": Decimal("49.00"),
        "max_batch_size": 100,
        "output_fields": ["label", "confidence"],
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "sort_order": 2,
        "is_public": False,
        "model_variant": "full",
        "description": "By contract only. The full model with probability vectors; assigned by staff.",
        "requests_per_minute": 6_000,
        "requests_per_hour": 300_000,
        "requests_per_day": 5_000_000,
        "monthly_included_requests": 50_000_000,
        "overage_allowed": True,
        "price_per_1000_overage": Decimal("0.2000"),
        "monthly_base_price": Decimal("2000.00"),
        "max_batch_size": 100,
        "output_fields": ["label", "confidence", "probabilities"],
    },
]


def seed(apps, schema_editor):
    Tier = apps.get_model("tiers", "Tier")
    for row in SEED:
        Tier.objects.get_or_create(code=row["code"], defaults=row)


class Migration(migrations.Migration):
    dependencies = [("tiers", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
