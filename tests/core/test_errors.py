"""Error pages: JSON under /v1/, the site's own HTML elsewhere; never the framework, a version or a traceback.
And the security headers every response carries."""

import json
import platform

import django
import pytest
from django.conf import settings as django_settings
from django.http import HttpResponse
from django.test import Client

from core.errors import ApplicationError, NotFoundError, PermissionDeniedError
from core.middleware import SecurityHeadersMiddleware

pytestmark = pytest.mark.django_db

LEAKS = ("Django", "django", "Python", "python", "Traceback", "Werkzeug", "gunicorn")


@pytest.fixture
def failing_urls(settings):
    settings.ROOT_URLCONF = "tests.core.failing_urls"


@pytest.fixture
def quiet_client() -> Client:
    """A client that receives the 500 page instead of the exception, as a browser would."""
    return Client(raise_request_exception=False)


def _assert_no_software_named(response) -> None:
    body = response.content.decode()
    for word in (*LEAKS, django.get_version(), platform.python_version()):
        assert word not in body, word
    assert response.headers["Server"] == "moat"
    assert "X-Powered-By" not in response.headers


def _assert_security_headers(response) -> None:
    assert response["Content-Security-Policy"] == django_settings.CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Permissions-Policy"] == "camera=(), microphone=(), geolocation=()"


def _json_error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


# --- 404 -------------------------------------------------------------------------------------------------------


def test_an_unknown_portal_url_answers_the_sites_own_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8"
    body = response.content.decode()
    assert "Page not found" in body
    assert "No such resource." in body
    _assert_no_software_named(response)


def test_the_404_page_does_not_reflect_the_requested_path(client):
    response = client.get("/%3Cscript%3Ealert(1)%3C/script%3E/")

    assert response.status_code == 404
    assert "<script>alert(1)" not in response.content.decode()


@pytest.mark.parametrize("path", ["/v1/anything", "/v1/", "/v1/predict/nope/deeper"])
def test_an_unknown_api_url_answers_a_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert _json_error(response) == {"error": {"code": "not_found", "message": "No such resource."}}
    _assert_no_software_named(response)


def test_an_unknown_api_url_answers_json_for_any_method(client):
    response = client.post("/v1/anything", data="{}", content_type="application/json")

    assert response.status_code == 404
    assert _json_error(response)["error"]["code"] == "not_found"


# --- 500, 403, 400 ---------------------------------------------------------------------------------------------


def test_a_crash_on_a_portal_page_answers_the_html_500_page_without_details(failing_urls, quiet_client):
    response = quiet_client.get("/boom/")

    assert response.status_code == 500
    assert response["Content-Type"] == "text/html; charset=utf-8"
    body = response.content.decode()
    assert "Something went wrong on our side. Please try again." in body
    assert "secret internal detail" not in body
    assert "RuntimeError" not in body
    _assert_no_software_named(response)


def test_a_crash_under_v1_answers_a_json_500_without_details(failing_urls, quiet_client):
    response = quiet_client.get("/v1/boom/")

    assert response.status_code == 500
    assert _json_error(response) == {
        "error": {"code": "server_error", "message": "Something went wrong on our side. Please try again."}
    }


def test_permission_denied_answers_html_403_on_the_portal_and_json_under_v1(failing_urls, client):
    page = client.get("/forbidden/")
    api = client.get("/v1/forbidden/")

    assert page.status_code == 403
    assert "You do not have access to this resource." in page.content.decode()
    assert "internal reason" not in page.content.decode()
    assert api.status_code == 403
    assert _json_error(api) == {"error": {"code": "forbidden", "message": "You do not have access to this resource."}}


def test_a_suspicious_request_answers_the_html_400_page(failing_urls, client):
    response = client.get("/suspicious/")

    assert response.status_code == 400
    assert "The request could not be understood." in response.content.decode()
    assert "internal reason" not in response.content.decode()
    _assert_no_software_named(response)


def test_a_host_header_outside_allowed_hosts_answers_400(client):
    response = client.get("/login/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert "The request could not be understood." in response.content.decode()
    assert "evil.example" not in response.content.decode()


def test_a_form_posted_without_its_csrf_token_answers_the_sites_403_page():
    client = Client(enforce_csrf_checks=True)

    response = client.post("/login/", {"email": "someone@example.com", "password": "whatever"})

    assert response.status_code == 403
    assert "Your form expired. Go back, reload the page and try again." in response.content.decode()
    _assert_no_software_named(response)


# --- headers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/signup/", "/no-such-page/", "/v1/anything"])
def test_responses_carry_the_security_headers(client, path):
    response = client.get(path)

    _assert_security_headers(response)
    assert response.headers["Server"] == "moat"


def test_an_error_page_carries_the_security_headers(failing_urls, quiet_client):
    _assert_security_headers(quiet_client.get("/boom/"))


def test_headers_naming_the_software_are_removed_from_responses(failing_urls, client):
    response = client.get("/server-header/")

    assert response.content == b"ok"
    assert response.headers["Server"] == "moat"
    assert "X-Powered-By" not in response.headers


def test_the_middleware_keeps_a_view_specific_content_security_policy(rf, settings):
    def view(request):
        response = HttpResponse()
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    response = SecurityHeadersMiddleware(view)(rf.get("/"))

    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert response["Permissions-Policy"] == "camera=(), microphone=(), geolocation=()"


# --- the domain errors -----------------------------------------------------------------------------------------


def test_application_error_carries_a_stable_code_a_message_and_a_status():
    error = ApplicationError("Broken rule.")

    assert (error.code, error.message, error.status, str(error)) == (
        "application_error",
        "Broken rule.",
        400,
        "Broken rule.",
    )


def test_application_error_code_can_be_overridden_per_instance_only():
    error = ApplicationError("Broken rule.", code="quota_exceeded")

    assert error.code == "quota_exceeded"
    assert ApplicationError.code == "application_error"


def test_not_found_and_permission_denied_errors_map_to_404_and_403():
    assert (NotFoundError("x").code, NotFoundError("x").status) == ("not_found", 404)
    assert (PermissionDeniedError("x").code, PermissionDeniedError("x").status) == ("permission_denied", 403)
