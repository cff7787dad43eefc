"""The WSGI entry point: /v1/ and /v2 run through the API's short middleware (no sessions, no CSRF, no cookies; the
security headers and the Host check kept), every other path through the full middleware."""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings

from config.wsgi import application

pytestmark = pytest.mark.django_db


def _call(path: str, *, host: str = "127.0.0.1", headers: dict[str, str] | None = None):
    environ: dict = {"PATH_INFO": path, "HTTP_HOST": host, "wsgi.input": io.BytesIO(b"")}
    environ.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()})
    setup_testing_defaults(environ)
    started: dict = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = response_headers

    body = b"".join(application(environ, start_response))
    return started["status"], started["headers"], body


def _names(headers) -> list[str]:
    return [name.lower() for name, _ in headers]


def test_an_api_call_gets_a_json_error_the_security_headers_and_no_cookie():
    status, headers, body = _call("/v1/models", headers={"Authorization": "Bearer not-a-key"})

    assert status == 401
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    names = _names(headers)
    assert {"content-security-policy", "x-frame-options", "x-content-type-options"} <= set(names)
    assert "set-cookie" not in names and "vary" not in names  # no session or CSRF machinery ran
    assert dict(headers)["Server"] == "moat"


def test_an_api_call_to_a_host_outside_allowed_hosts_is_refused():
    status, _, _ = _call("/v1/models", host="attacker.example", headers={"Authorization": "Bearer not-a-key"})

    assert status == 400


def test_the_portal_runs_through_the_full_middleware():
    status, headers, _ = _call("/login/")

    assert status == 200
    cookies = [value for name, value in headers if name.lower() == "set-cookie"]
    assert any(cookie.strip().startswith("csrftoken=") for cookie in cookies)


def test_building_the_api_handler_leaves_the_sites_middleware_setting_alone():
    assert "django.contrib.sessions.middleware.SessionMiddleware" in settings.MIDDLEWARE
    assert settings.API_MIDDLEWARE != settings.MIDDLEWARE


@pytest.mark.parametrize(("path", "status"), [("/v2", 200), ("/v2/health/live", 200), ("/v2/models/digits", 401)])
def test_the_open_inference_protocol_runs_through_the_apis_middleware_too(path, status):
    answer, headers, body = _call(path, headers={"Authorization": "Bearer not-a-key"})

    assert answer == status
    if status == 401:
        assert json.loads(body) == {"error": json.loads(body)["error"], "code": "invalid_api_key"}
    names = _names(headers)
    assert "content-security-policy" in names and "set-cookie" not in names and "vary" not in names
