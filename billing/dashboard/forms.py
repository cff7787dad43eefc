from decimal import Decimal

from django import forms


class SpendCapForm(forms.Form):
    monthly_cap = forms.DecimalField(
        label="Monthly spend cap (USD)",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=10,
        decimal_places=2,
        help_text="Leave blank for no cap. Once this month's invoice preview reaches the cap, API calls are refused "
        "with 402 spend_cap_reached until you raise it or the month ends.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
