"""Error pages: JSON under /v1/ and /v2/ (each in its protocol's shape), the site's own HTML elsewhere; neither
names the framework or a version."""

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from core.db import DATABASE_UNAVAILABLE_ERRORS

_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    403: ("forbidden", "You do not have access to this resource."),
    404: ("not_found", "No such resource."),
    500: ("server_error", "Something went wrong on our side. Please try again."),
    503: ("service_unavailable", "The service is briefly unavailable. Retry in a few seconds."),
}


def _is_v2(request: HttpRequest) -> bool:
    return request.path == "/v2" or request.path.startswith("/v2/")


def error_response(request: HttpRequest, status: int) -> HttpResponse:
    code, message = _MESSAGES[status]
    if request.path.startswith("/v1/"):
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if _is_v2(request):
        # The Open Inference Protocol's error object, Moat's code beside it (serving.predictions.api_v2).
        return JsonResponse({"error": message, "code": code}, status=status)
    return render(request, "errors/error.html", {"status": status, "message": message}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 404)


@csrf_exempt  # any method on an unknown API path is a JSON 404, never a CSRF page: the API uses no cookies
def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    """500, or 503 with Retry-After when the error is PostgreSQL being unavailable (a restart, a failover): the
    page is then rendered without the request's context, whose signed-in user would need the database again."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE_ERRORS):
        code, message = _MESSAGES[503]
        if request.path.startswith("/v1/"):
            response = JsonResponse({"error": {"code": code, "message": message}}, status=503)
        elif _is_v2(request):
            response = JsonResponse({"error": message, "code": code}, status=503)
        else:
            response = HttpResponse(
                render_to_string("errors/error.html", {"status": 503, "message": message}), status=503
            )
        response["Retry-After"] = "5"
        return response
    return error_response(request, 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(
        request,
        "errors/error.html",
        {"status": 403, "message": "Your form expired. Go back, reload the page and try again."},
        status=403,
    )


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: a plain view that touches nothing (also the benchmark's baseline)."""
    return JsonResponse({"status": "ok"})
