"""The old shape columns go (the schema holds them now); a retired numpy version can never be active again."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0004_describe_existing_models"),
    ]

    operations = [
        migrations.RemoveField(model_name="mlmodel", name="input_shape"),
        migrations.RemoveField(model_name="mlmodel", name="input_min"),
        migrations.RemoveField(model_name="mlmodel", name="input_max"),
        migrations.AddConstraint(
            model_name="modelversion",
            constraint=models.CheckConstraint(
                condition=models.Q(("artifact_format", "npz"), ("is_active", True), _negated=True),
                name="model_version_retired_never_active",
            ),
        ),
    ]
