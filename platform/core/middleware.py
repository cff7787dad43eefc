"""Response headers every page carries."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy (Django 5.2 has none built in) and X-Frame-Options to every answer, and drops
    headers that name software."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        # Django's XFrameOptionsMiddleware sits inside CommonMiddleware, so an answer made before it ran (the 400 of
        # a Host outside ALLOWED_HOSTS) would otherwise leave without the header.
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        response.headers["Server"] = "moat"  # the servers add their own name unless the app names itself
        response.headers.pop("X-Powered-By", None)
        return response
