from django import forms


class AcceptTermsForm(forms.Form):
    accept_terms = forms.BooleanField(
        required=True,
        label="I have read and accept these Terms of Service",
        error_messages={"required": "You must accept the Terms of Service to continue."},
    )
