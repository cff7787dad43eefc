"""Keeps a signed-in customer out of the portal until they have accepted the Terms in force."""

from collections.abc import Callable
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from legal.selectors import user_has_accepted_current_terms

# Pages a person must still reach while the Terms wait for them.
_EXEMPT_PREFIXES = ("/terms/", "/logout/", "/verify-email/", "/static/", "/v1/", "/admin/", "/console/")


class TermsAcceptanceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_EXEMPT_PREFIXES):  # first: the API must not pay for a session lookup
            return self.get_response(request)
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_staff
            and not user_has_accepted_current_terms(user_id=user.pk)
        ):
            return HttpResponseRedirect(f"{reverse('legal:accept')}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
