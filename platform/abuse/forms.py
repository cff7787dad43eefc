from django import forms


class AppealForm(forms.Form):
    message = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 6}),
        label="Why is the decision wrong?",
        help_text="What your organization uses the API for, and anything that explains the traffic we saw.",
    )
