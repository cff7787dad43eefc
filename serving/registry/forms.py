"""The admin's registration form: the same step as `manage.py register_model`, from files uploaded in a browser."""

import json

from django import forms

from serving.inference import LAYOUTS, OUTPUT_KINDS
from tiers.models import ModelVariant

_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class RegisterModelVersionForm(forms.Form):
    slug = forms.SlugField(max_length=64, help_text="The model's id in the API. A new id creates the model.")
    onnx = forms.FileField(label="ONNX file", help_text="A graph with one float input and a free batch dimension.")
    variant = forms.ChoiceField(choices=ModelVariant.choices)
    version = forms.CharField(max_length=64, help_text="Unique per model and variant, e.g. 2026.12.01.")
    activate = forms.BooleanField(required=False, help_text="Make it the active version of its variant.")
    description = forms.CharField(max_length=255, required=False, help_text="For a new model.")
    classes = forms.CharField(
        required=False, help_text="For a new model: class labels in the order of the graph's outputs, comma-separated."
    )
    schema = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text='For a new model: the input schema as JSON, e.g. {"kind": "tabular", "features": [...]}.',
    )
    reference_data = forms.FileField(
        required=False, help_text="For a new model: natural inputs, .npy (rows x features) or .csv."
    )
    heldout = forms.FileField(
        required=False, label="Held-out set", help_text=".npz (inputs, labels) or .csv with a 'label' column."
    )
    input_name = forms.CharField(max_length=128, required=False, help_text="Default: the graph's only input.")
    input_layout = forms.ChoiceField(choices=[("", "found from the graph")] + [(v, v) for v in LAYOUTS], required=False)
    output_name = forms.CharField(max_length=128, required=False, help_text="Default: its only float output.")
    output_kind = forms.ChoiceField(
        choices=[("", "found from the reference answers")] + [(v, v) for v in OUTPUT_KINDS], required=False
    )
    embedding_output = forms.CharField(max_length=128, required=False, help_text="The penultimate layer, if any.")

    def clean_schema(self) -> object:
        text = self.cleaned_data["schema"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"The schema is not JSON: {exc}") from exc

    def clean_classes(self) -> list[str] | None:
        text = self.cleaned_data["classes"].strip()
        return text.split(",") if text else None

    def clean(self) -> dict:
        cleaned = super().clean()
        for name in ("onnx", "reference_data", "heldout"):
            upload = cleaned.get(name)
            if upload is not None and upload.size > _MAX_UPLOAD_BYTES:
                self.add_error(name, f"At most {_MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.")
        return cleaned
