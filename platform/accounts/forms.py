"""Forms of the sign-up, sign-in and invitation pages. Every bad input becomes a form error."""

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.emails import canonical_email
from accounts.errors import SignupError
from accounts.models import INVITATION_MAX_AGE, User
from accounts.services import email_check_allowed

_INVALID_ADDRESS = "Enter a valid email address."


def _require_mailbox(email: str) -> str:
    """The address, if it has a canonical mailbox. Django's EmailField passes some addresses the canonical form
    refuses (an IDN domain too long once IDNA-encoded): they are a form error here, not a DataError later."""
    try:
        canonical_email(email)
    except ValueError as exc:
        raise ValidationError(_INVALID_ADDRESS) from exc
    return email


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    organization = forms.CharField(
        max_length=100,
        label="Organization name",
        help_text="Your company or project; you can invite others later.",
    )
    accept_terms = forms.BooleanField(
        required=True,
        label="I accept the Terms of Service",
        error_messages={"required": "You must accept the Terms of Service to sign up."},
    )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        try:
            email_check_allowed(email=email)
        except SignupError as exc:
            raise ValidationError(exc.message) from exc
        except ValueError as exc:
            raise ValidationError(_INVALID_ADDRESS) from exc
        return email

    def clean_organization(self) -> str:
        name = self.cleaned_data["organization"].strip()
        if not name:
            raise ValidationError("Enter your organization's name.")
        return name

    def clean(self) -> dict:
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            try:
                validate_password(password, user=User(email=cleaned.get("email") or ""))
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class LoginForm(forms.Form):
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    password = forms.CharField(
        strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, request: HttpRequest, *args, **kwargs) -> None:
        self.request = request
        self.user: User | None = None
        super().__init__(*args, **kwargs)

    def clean_email(self) -> str:
        return _require_mailbox(self.cleaned_data["email"])

    def clean(self) -> dict:
        cleaned = super().clean()
        email, password = cleaned.get("email"), cleaned.get("password")
        if email and password:
            self.user = authenticate(self.request, email=email, password=password)
            if self.user is None:
                raise ValidationError("That email and password don't match an account.", code="invalid_login")
        return cleaned


class CanonicalPasswordResetForm(PasswordResetForm):
    """Finds the account for any spelling of its mailbox, so the reset mail goes where sign-in would."""

    def clean_email(self) -> str:
        return _require_mailbox(self.cleaned_data["email"])

    def get_users(self, email: str) -> list[User]:
        try:
            canonical = canonical_email(email)
        except ValueError:
            return []
        return [
            user
            for user in User.objects.filter(email_canonical=canonical, is_active=True)
            if user.has_usable_password() or user.email_verified
        ]


class InviteForm(forms.Form):
    email = forms.EmailField(
        max_length=254,
        label="Email address",
        help_text=f"They get a link to join as a member. It works for {INVITATION_MAX_AGE.days} days.",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )

    def clean_email(self) -> str:
        return _require_mailbox(self.cleaned_data["email"])


class RemoveMemberForm(forms.Form):
    confirm = forms.BooleanField(required=True, error_messages={"required": "Tick the box to confirm."})


class AcceptInvitationForm(forms.Form):
    password = forms.CharField(
        strip=False,
        max_length=128,
        label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    accept_terms = forms.BooleanField(
        required=True,
        label="I accept the Terms of Service",
        error_messages={"required": "You must accept the Terms of Service to join."},
    )

    def __init__(self, *args, email: str, **kwargs) -> None:
        self.email = email
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password, user=User(email=self.email))
        return password
