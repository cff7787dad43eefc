from django.db import migrations, models

DEFENSES = {
    "free": {"top_k": 1, "confidence_decimals": 1, "logit_noise_scale": 1.0, "watermark_fraction": 0.005},
    "pro": {"top_k": 1, "confidence_decimals": 2, "logit_noise_scale": 0.5, "watermark_fraction": 0.005},
    "enterprise": {},
}


def seed(apps, schema_editor):
    Tier = apps.get_model("tiers", "Tier")
    for code, defenses in DEFENSES.items():
        Tier.objects.filter(code=code, defenses={}).update(defenses=defenses)


class Migration(migrations.Migration):
    dependencies = [("tiers", "0002_seed_tiers")]
    operations = [
        migrations.AddField(
            model_name="tier",
            name="defenses",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Output defenses for this tier (serving.defenses.DefenseConfig fields). Empty: answers are "
                "never perturbed (the enterprise tier).",
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
