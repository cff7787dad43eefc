"""Models are described by an input schema and reference data; versions are ONNX graphs.

Models registered before this could only be 8x8 images of intensities 0..16 (the registry refused anything else),
so each gets that image schema. They have no reference data yet: `train_demo_model --if-missing` (run by
`make run`) supplies the demo's, and an operator's model gets its own with `register_model`. Their versions were
numpy archives, which no process serves any more: they stay as history, inactive, until an ONNX version replaces
them.
"""

from django.db import migrations


def describe_existing_models(apps, schema_editor):
    MLModel = apps.get_model("registry", "MLModel")
    ModelVersion = apps.get_model("registry", "ModelVersion")
    for model in MLModel.objects.all():
        side = int(round(model.input_shape[0] ** 0.5))
        model.input_schema = {
            "kind": "image",
            "height": side,
            "width": side,
            "channels": 1,
            "min": model.input_min,
            "max": model.input_max,
            "step": 1.0,
            "preprocessing": {"fit": "ink_box", "margin": 0.5 / side, "invert": "auto", "normalize_peak": True},
        }
        model.save(update_fields=["input_schema"])
    ModelVersion.objects.update(artifact_format="npz", is_active=False)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_input_schema_and_onnx"),
    ]

    operations = [
        migrations.RunPython(describe_existing_models, migrations.RunPython.noop),
    ]
