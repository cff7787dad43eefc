"""A URLconf for the error-page tests: the real routes plus views that fail on purpose."""

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpResponse
from django.urls import include, path


def boom(request):
    raise RuntimeError("secret internal detail in /srv/moat/settings.py")


def forbidden(request):
    raise PermissionDenied("internal reason")


def suspicious(request):
    raise SuspiciousOperation("internal reason")


def names_its_server(request):
    response = HttpResponse("ok")
    response["Server"] = "gunicorn/23.0.0"
    response["X-Powered-By"] = "Django/5.2"
    return response


urlpatterns = [
    path("boom/", boom),
    path("v1/boom/", boom),
    path("forbidden/", forbidden),
    path("v1/forbidden/", forbidden),
    path("suspicious/", suspicious),
    path("server-header/", names_its_server),
    path("", include("config.urls")),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
