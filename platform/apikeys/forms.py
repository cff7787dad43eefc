from django import forms

from apikeys.services import ROLL_GRACE_CHOICES


class CreateKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. 'production backend'.")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name


class RollKeyForm(forms.Form):
    grace = forms.ChoiceField(
        choices=[
            ("0", "immediately"),
            ("1h", "after 1 hour"),
            ("24h", "after 24 hours"),
            ("7d", "after 7 days"),
        ],
        initial="24h",
        label="Old key stops working",
    )

    def grace_period(self):
        return ROLL_GRACE_CHOICES[self.cleaned_data["grace"]]


class RevokeKeyForm(forms.Form):
    confirm = forms.BooleanField(required=True, error_messages={"required": "Tick the box to confirm."})
