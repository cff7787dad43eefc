"""How django-axes counts failed sign-ins: per client IP and per mailbox, refusing before any password hash."""

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.emails import MAX_ADDRESS_LENGTH, canonical_email
from core.http import client_ip


def lockout_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The canonical mailbox of the attempt (or the lower-cased input, for a non-address), at most 254 characters:
    it is stored in AccessAttempt.username, a varchar(255)."""
    address = (credentials or {}).get("email") or (credentials or {}).get("username") or request.POST.get("email")
    if not address:
        return None
    try:
        username = canonical_email(address)
    except ValueError:
        username = address.lower()
    return username[:MAX_ADDRESS_LENGTH]


def lockout_client_ip(request: HttpRequest) -> str | None:
    return client_ip(request)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    from accounts.forms import LoginForm

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    form = LoginForm(request, data=None)
    message = f"Too many failed sign-in attempts. Try again in {minutes} minutes, or reset your password."
    response = render(request, "accounts/login.html", {"form": form, "lockout_message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


class AccountScopedResetHandler(AxesDatabaseHandler):
    """On a successful sign-in, forget only the failures against that account.

    The stock handler also forgets every failure from the client's IP, so an attacker could guess at a victim,
    sign in to an account of their own from the same address, and never be locked out."""

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = lockout_username(request, credentials)
        if not username:
            return 0
        deleted, _ = AccessAttempt.objects.filter(username=username).delete()
        return deleted
