from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("legal", "0002_seed_terms")]

    operations = [
        migrations.AddField(
            model_name="termsacceptance",
            name="body_sha256",
            # Existing rows get "" here, then their version's hash from 0004.
            field=models.CharField(
                default="",
                editable=False,
                help_text="SHA-256 of the version's text when it was accepted.",
                max_length=64,
            ),
            preserve_default=False,
        ),
    ]
