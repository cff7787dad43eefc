"""The public tiers' watermark now marks input regions (serving.watermark v2), 1.5% of them: a region-keyed
watermark survives a thief's regularised copy where single watermarked inputs did not, and 1.5% of regions is what
the red-team exercise needed for every copy to be provable. Only the seeded value moves; a fraction an operator
chose stays."""

from django.db import migrations

SEEDED, REGIONS = 0.005, 0.015


def _replace_fraction(apps, old: float, new: float) -> None:
    Tier = apps.get_model("tiers", "Tier")
    for tier in Tier.objects.filter(code__in=["free", "pro"]):
        if (tier.defenses or {}).get("watermark_fraction") == old:
            tier.defenses = {**tier.defenses, "watermark_fraction": new}
            tier.save(update_fields=["defenses"])


def raise_fraction(apps, schema_editor):
    _replace_fraction(apps, SEEDED, REGIONS)


def restore_fraction(apps, schema_editor):
    _replace_fraction(apps, REGIONS, SEEDED)


class Migration(migrations.Migration):
    dependencies = [("tiers", "0004_per_key_limits")]
    operations = [migrations.RunPython(raise_fraction, restore_fraction)]
