"""Forms of the staff console: the list filters (GET) and the review actions (POST, each with a required reason)."""

from django import forms
from django.conf import settings

from abuse.models import AuditAction, RiskLevel


class ReviewQueueFilterForm(forms.Form):
    level = forms.ChoiceField(choices=[("", "All levels"), *RiskLevel.choices], required=False, label="Risk level")


class AuditFilterForm(forms.Form):
    organization = forms.IntegerField(min_value=1, required=False, label="Organization id")
    action = forms.ChoiceField(choices=[("", "All actions"), *AuditAction.choices], required=False)


class ReasonForm(forms.Form):
    """Every review action is written to the audit log with the reviewer's reason: it is required."""

    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class NoteForm(ReasonForm):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), label="Note")


class ThrottleForm(ReasonForm):
    factor = forms.FloatField(
        required=False,
        label="Factor",
        help_text="Share of the tier's rate limits kept: above 0, at most 1.",
    )
    field_order = ["factor", "reason"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read at form time, not import time: settings can change under tests and per environment.
        self.fields["factor"].initial = settings.ABUSE_THROTTLE_FACTOR
        self.fields["factor"].widget.attrs.update({"step": "0.05", "min": "0", "max": "1"})

    def clean_factor(self) -> float | None:
        factor = self.cleaned_data.get("factor")
        if factor is not None and not 0 < factor <= 1:
            raise forms.ValidationError("Give a factor above 0 and at most 1.")
        return factor
