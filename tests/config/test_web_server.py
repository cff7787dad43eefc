"""The web server as `make run` starts it names no software and serves the site's own error pages."""

import urllib.error
import urllib.request
from email.message import Message

import pytest

from tests.processes import web_server

pytestmark = pytest.mark.django_db(transaction=True)


def _get(url: str) -> tuple[int, Message, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our loopback server
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_no_response_names_the_server_or_framework(server, tmp_path):
    with web_server(log_path=tmp_path / "web.log", extra_env={"MOAT_WEB_SERVER": server}) as (base_url, _):
        responses = [_get(base_url + path) for path in ("/", "/no-such-page/", "/v1/no-such-endpoint", "/healthz")]

    assert [status for status, _, _ in responses] == [200, 404, 404, 200]
    for _, headers, body in responses:
        assert headers.get_all("Server") == ["moat"]
        text = (str(headers) + body).lower()
        for word in ("gunicorn", "granian", "django", "python", "wsgi"):
            assert word not in text
    assert responses[0][1]["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in responses[0][1]["Content-Security-Policy"]
    assert responses[2][2] == '{"error": {"code": "not_found", "message": "No such resource."}}'
