"""Error pages: JSON under /v1/, the site's own HTML elsewhere; neither names the framework or a version."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    403: ("forbidden", "You do not have access to this resource."),
    404: ("not_found", "No such resource."),
    500: ("server_error", "Something went wrong on our side. Please try again."),
}


def error_response(request: HttpRequest, status: int) -> HttpResponse:
    code, message = _MESSAGES[status]
    if request.path.startswith("/v1/"):
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
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
    return error_response(request, 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(
        request,
        "errors/error.html",
        {"status": 403, "message": "Your form expired. Go back, reload the page and try again."},
        status=403,
    )


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: a plain view that touches nothing (also the benchmark's baseline)."""
    return JsonResponse({"status": "ok"})
