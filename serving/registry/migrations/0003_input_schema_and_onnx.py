"""Models are described by an input schema and reference data; versions are ONNX graphs with a binding (the new
columns; 0004 fills them for existing rows, 0005 drops the old ones)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_version_input_profile"),
    ]

    operations = [
        migrations.AddField(
            model_name="mlmodel",
            name="input_schema",
            field=models.JSONField(
                default=dict,
                help_text="What one input is (serving.input_schema): tabular features with bounds and grid steps, or an image with its size, value range and preprocessing.",
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="mlmodel",
            name="reference_path",
            field=models.CharField(default="", help_text="Relative to MODEL_ARTIFACT_DIR.", max_length=500),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="mlmodel",
            name="reference_sha256",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="mlmodel",
            name="reference_rows",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="mlmodel",
            name="heldout_path",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="mlmodel",
            name="heldout_sha256",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="mlmodel",
            name="heldout_rows",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="artifact_format",
            field=models.CharField(
                choices=[("onnx", "ONNX graph"), ("npz", "numpy archive (retired)")], default="onnx", max_length=8
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="input_name",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="input_layout",
            field=models.CharField(blank=True, help_text="flat, NCHW, NHWC or NHW.", max_length=8),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="output_name",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="output_kind",
            field=models.CharField(blank=True, help_text="logits or probabilities.", max_length=16),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="embedding_output",
            field=models.CharField(blank=True, help_text="The penultimate layer, if named.", max_length=128),
        ),
    ]
