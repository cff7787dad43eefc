"""Headers and error answers, across every status the platform gives: each carries the security headers and names no
software, version, path or traceback; session and CSRF cookies are Secure, HttpOnly and SameSite under the
production settings; and the real web server's own protocol errors name nothing either.

Every route, method and role is covered by the authorization matrix (which applies tests/security/leaks.py to each
of its answers); here are the statuses the matrix cannot reach with empty requests. `manage.py check --deploy` with
production settings is tests/config/test_deploy_check.py; the error pages themselves are tests/core/test_errors.py."""

import json
import socket

import orjson
import pytest
from django.test import Client

from apikeys.services import apikeys_freeze_for_organization
from tests.config.test_deploy_check import PRODUCTION_ENV, _manage
from tests.conftest import signed_in
from tests.factories import DEFAULT_PASSWORD, UserFactory, raw_key_for
from tests.processes import web_server
from tests.security.leaks import assert_names_no_software, assert_security_headers
from tiers.cache import tier_cache_clear
from tiers.models import Tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def quiet_client() -> Client:
    return Client(raise_request_exception=False)


def _api(client: Client, method: str, path: str, key: str | None, body: bytes = b"", **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.generic(method, path, body, content_type=extra.pop("content_type", "application/json"), **headers)


def _error_code(response) -> str:
    return orjson.loads(response.content)["error"]["code"]


def _checked(response, status: int):
    assert response.status_code == status, response.content[:300]
    assert_security_headers(response)
    assert_names_no_software(response)
    return response


# --- every error status, HTML and JSON ---------------------------------------------------------------------------


def test_api_errors_of_every_status_name_nothing(
    organization, registered_digits, settings, django_capture_on_commit_callbacks
):
    key = raw_key_for(organization)
    client = Client()
    assert _error_code(_checked(_api(client, "POST", "/v1/models/digits/predict", key, b"{"), 400)) == "invalid_input"
    assert _error_code(_checked(_api(client, "GET", "/v1/models", None), 401)) == "invalid_api_key"
    assert _error_code(_checked(_api(client, "GET", "/v1/nope", key), 404)) == "not_found"
    assert _error_code(_checked(_api(client, "DELETE", "/v1/models", key), 405)) == "method_not_allowed"
    assert _error_code(
        _checked(_api(client, "POST", "/v1/models/digits/predict", key, b"a=1", content_type="text/plain"), 415)
    ) == ("unsupported_media_type")
    settings.API_MAX_BODY_BYTES = 100
    assert _error_code(_checked(_api(client, "POST", "/v1/models/digits/predict", key, b"{}" * 100), 413)) == (
        "payload_too_large"
    )
    Tier.objects.filter(code="free").update(requests_per_minute=1)
    tier_cache_clear()
    _api(client, "GET", "/v1/usage", key)
    assert _error_code(_checked(_api(client, "GET", "/v1/usage", key), 429)) == "rate_limited"
    with django_capture_on_commit_callbacks(execute=True):
        apikeys_freeze_for_organization(organization_id=organization.pk, reason="test", actor="tests")
    assert _error_code(_checked(_api(client, "GET", "/v1/usage", key), 403)) == "key_frozen"


def test_html_errors_of_every_status_name_nothing(owner, settings):
    client = Client()
    _checked(client.get("/login/", HTTP_HOST="evil.example"), 400)
    _checked(Client(enforce_csrf_checks=True).post("/login/", {"email": "a@example.com", "password": "x"}), 403)
    _checked(client.get("/no-such-page/"), 404)
    _checked(client.get("/logout/"), 405)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _checked(client.post("/login/", {"email": "a@example.com", "password": "x" * 5000}), 400)
    settings.AXES_FAILURE_LIMIT = 1
    client.post("/login/", {"email": owner.email, "password": "wrong"})
    _checked(client.post("/login/", {"email": owner.email, "password": DEFAULT_PASSWORD}), 429)


def test_the_400_for_a_host_outside_allowed_hosts_carries_every_security_header():
    """Refused by CommonMiddleware, before Django's X-Frame-Options middleware ran: the header once went missing."""
    response = Client().get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["X-Frame-Options"] == "DENY"
    assert_security_headers(response)


def test_a_staff_member_without_the_permission_gets_the_sites_403_page(organization):
    staff = UserFactory(is_staff=True)
    response = signed_in(staff).post(f"/console/organizations/{organization.pk}/actions/warn/", {"warn-reason": "x"})
    assert "You do not have access to this resource." in _checked(response, 403).content.decode()


@pytest.mark.parametrize("path", ["/boom/", "/v1/boom/"])
def test_a_crash_answers_500_naming_nothing(settings, quiet_client, path):
    settings.ROOT_URLCONF = "tests.core.failing_urls"
    body = _checked(quiet_client.get(path), 500).content.decode()
    assert "secret internal detail" not in body and "RuntimeError" not in body and "settings.py" not in body


# --- cookies under the production settings ----------------------------------------------------------------------

COOKIE_SETTINGS = (
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SAMESITE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "DEBUG",
)


@pytest.fixture(scope="module")
def production_settings() -> dict:
    """The cookie and transport settings as config.settings computes them from production's environment."""
    script = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {COOKIE_SETTINGS!r}}}))"
    )
    result = _manage("shell", "-c", script, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_settings_make_cookies_secure_httponly_and_samesite(production_settings):
    assert production_settings == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "DEBUG": False,
    }


def test_under_production_settings_signing_in_sets_only_secure_cookies(production_settings, settings, owner):
    for name, value in production_settings.items():
        setattr(settings, name, value)
    client = Client()

    assert client.get("/login/").status_code == 301  # plain HTTP is sent to HTTPS
    page = client.get("/login/", secure=True)
    form = {"email": owner.email, "password": DEFAULT_PASSWORD, "csrfmiddlewaretoken": page.context["csrf_token"]}
    response = client.post("/login/", form, secure=True)

    assert response.status_code == 302
    cookies = {**page.cookies, **response.cookies}
    assert set(cookies) >= {"sessionid", "csrftoken"}
    for name in ("sessionid", "csrftoken"):
        assert cookies[name]["secure"] is True, name
        assert cookies[name]["httponly"] is True, name
        assert cookies[name]["samesite"] == "Lax", name
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


# --- the real web server's own errors ------------------------------------------------------------------------------


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.django_db(transaction=True)
def test_the_web_servers_own_protocol_errors_name_no_software(tmp_path):
    requests = [
        b"NONSENSE\r\n\r\n",  # not a request line
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",  # URI too long
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad\x00Header: x\r\n\r\n",  # invalid header
        b"GET /login/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",  # Django's 400
        b"DELETE /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",  # the API's 401
    ]
    with web_server(log_path=tmp_path / "web.log", workers=1) as (base_url, _):
        port = int(base_url.rsplit(":", 1)[1])
        answers = [_raw(port, request).decode("latin-1") for request in requests]

    for answer in answers:
        status = int(answer.split(" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
        for word in ("gunicorn", "granian", "Django", "django", "Python", "python", "Traceback"):
            assert word not in answer, (word, answer[:300])
