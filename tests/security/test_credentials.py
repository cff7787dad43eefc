"""Credentials: password resets are limited per client IP and per account before anything is looked up or sent (sign-in
has the same, by django-axes, before any password hash: tests/accounts/test_lockout.py); an API key in a URL is
refused and never logged; and after a run that creates keys and calls the API, no plaintext key is anywhere in the
database, in Redis, in the captured logs or in the web server's log file."""

import logging
import re
from io import StringIO

import orjson
import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts.forms import CanonicalPasswordResetForm
from accounts.throttles import reset_counter_keys
from apikeys.models import ApiKey
from core.redaction import AccessLogFormatter, RedactingFormatter, redact_keys
from core.redis import redis_client
from serving.predictions.querylog import querylog_flush
from tests.conftest import signed_in
from tests.factories import member, raw_key_for
from tests.processes import web_server

LIMITED = "Too many password reset requests."

# --- password reset ------------------------------------------------------------------------------------------------


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every address the reset form looked an account up for."""
    calls: list[str] = []
    original = CanonicalPasswordResetForm.get_users

    def spy(self, email):
        calls.append(email)
        return original(self, email)

    monkeypatch.setattr(CanonicalPasswordResetForm, "get_users", spy)
    return calls


def _reset(email: str, ip: str = "198.51.100.1"):
    return Client().post("/password-reset/", {"email": email}, REMOTE_ADDR=ip)


def _assert_limited(response) -> None:
    assert response.status_code == 429
    assert LIMITED in response.content.decode()
    assert 0 < int(response["Retry-After"]) <= 3600


@pytest.mark.django_db
def test_a_fourth_reset_of_one_account_within_the_hour_is_refused_before_any_lookup_or_mail(lookups):
    member(email="victim@example.com")
    for n in range(3):
        assert _reset("victim@example.com", ip=f"203.0.113.{n + 1}").status_code == 302
    assert len(mail.outbox) == 3
    lookups.clear()

    _assert_limited(_reset("victim@example.com", ip="192.0.2.200"))

    assert lookups == []
    assert len(mail.outbox) == 3


@pytest.mark.django_db
def test_every_spelling_of_a_mailbox_counts_against_one_account():
    member(email="johndoe@gmail.com")
    for n, spelling in enumerate(["john.doe@gmail.com", "JohnDoe+a@gmail.com", "johndoe@googlemail.com"]):
        assert _reset(spelling, ip=f"203.0.113.{n + 1}").status_code == 302

    _assert_limited(_reset("j.o.h.n.doe@gmail.com", ip="192.0.2.200"))
    assert len(mail.outbox) == 3


@pytest.mark.django_db
def test_an_unknown_address_is_limited_exactly_like_a_customers_so_the_limit_reveals_no_account():
    member(email="customer@example.com")
    answers = {}
    for email in ("customer@example.com", "nobody@example.com"):
        answers[email] = [_reset(email, ip=f"203.0.113.{n + 1}").status_code for n in range(4)]

    assert answers["customer@example.com"] == answers["nobody@example.com"] == [302, 302, 302, 429]


@pytest.mark.django_db
def test_one_client_ip_is_limited_across_accounts(settings, lookups):
    settings.PASSWORD_RESET_LIMIT_PER_IP = 10
    for n in range(10):
        assert _reset(f"person{n}@example.com", ip="203.0.113.66").status_code == 302
    lookups.clear()

    _assert_limited(_reset("someone.else@example.com", ip="203.0.113.66"))

    assert lookups == []
    assert _reset("someone.else@example.com", ip="198.51.100.9").status_code == 302


@pytest.mark.django_db
def test_the_counters_expire_with_their_window_and_name_no_address(settings):
    settings.PASSWORD_RESET_WINDOW_SECONDS = 120
    _reset("victim@example.com", ip="203.0.113.1")

    ip_key, account_key = reset_counter_keys(client_ip="203.0.113.1", email="Victim@Example.com")
    for key in (ip_key, account_key):
        assert redis_client().get(key) == b"1"
        assert 0 < redis_client().ttl(key) <= 120
    assert "victim" not in account_key


@pytest.mark.django_db
def test_the_reset_form_fails_closed_while_redis_is_unreachable(settings, lookups):
    member(email="victim@example.com")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = _reset("victim@example.com")

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert lookups == [] and mail.outbox == []


# --- keys in URLs --------------------------------------------------------------------------------------------------


def _url_with_key(key: str) -> list[str]:
    encoded = key.replace("_", "%5F")
    return [
        f"/v1/models?api_key={key}",
        f"/v1/usage?key={encoded}",  # percent-encoded: once let through
        f"/v1/models?api_key={encoded.lower()}",
        f"/v1/models/{key}/predict",  # in the path
    ]


@pytest.mark.django_db
def test_a_key_anywhere_in_the_url_is_refused_even_percent_encoded_and_the_call_is_not_served(organization):
    key = raw_key_for(organization)
    for url in _url_with_key(key):
        for method in ("get", "post"):
            response = getattr(Client(), method)(url, HTTP_AUTHORIZATION=f"Bearer {key}")
            assert response.status_code == 400, (url, method)
            assert orjson.loads(response.content)["error"]["code"] == "invalid_input"
            assert key not in response.content.decode()


def test_log_lines_never_carry_a_key_or_a_forged_line():
    key = "moat_live_" + "A" * 43
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "path %s", (f"/v1/{key}\nFAKE",), None)

    assert redact_keys(f"a {key} b moat%5Flive%5F{'b' * 43} c") == "a <redacted> b <redacted> c"
    assert RedactingFormatter("%(message)s").format(record) == "path /v1/<redacted>\nFAKE"
    assert AccessLogFormatter("%(message)s").format(record) == "path /v1/<redacted>\\x0aFAKE"


def test_the_platforms_log_handler_redacts_keys():
    """Django's LOGGING formats every line through core.redaction (the web servers' logs: the scan below)."""
    key = "moat_live_" + "k" * 43
    record = logging.LogRecord("moat", logging.WARNING, __file__, 1, "a client sent %s in a URL", (key,), None)
    # The root handler settings.LOGGING installs (pytest adds capturing handlers of its own beside it).
    (handler,) = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    assert isinstance(handler.formatter, RedactingFormatter)

    assert handler.format(record).endswith("a client sent <redacted> in a URL")


# --- no plaintext key anywhere after a run --------------------------------------------------------------------------


def _database_holding(secrets: list[str]) -> list[str]:
    """Every text, JSON and bytea column of every table, searched for each secret (sessions decoded first)."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'ARRAY', 'USER-DEFINED')"
        )
        columns = cursor.fetchall()
        for table, column, data_type in columns:
            for secret in secrets:
                needle = f"\\x{secret.encode().hex()}" if data_type == "bytea" else f"%{secret}%"
                if data_type == "bytea":
                    condition = f'position(%s::bytea in "{column}") > 0'
                else:
                    condition = f'"{column}"::text LIKE %s'
                cursor.execute(f'SELECT count(*) FROM "{table}" WHERE {condition}', [needle])  # noqa: S608
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column}")
    for session in Session.objects.all():
        decoded = str(session.get_decoded())
        found += [f"django_session {session.pk}" for secret in secrets if secret in decoded]
    return found


def _redis_holding(secrets: list[str]) -> list[str]:
    connection_ = redis_client()
    found = []
    for key in connection_.scan_iter(count=1000):
        kind = connection_.type(key).decode()
        if kind == "string":
            values = [connection_.get(key)]
        elif kind == "hash":
            values = [b"%s=%s" % pair for pair in connection_.hgetall(key).items()]
        elif kind == "list":
            values = connection_.lrange(key, 0, -1)
        elif kind == "set":
            values = list(connection_.smembers(key))
        elif kind == "zset":
            values = connection_.zrange(key, 0, -1)
        elif kind == "stream":
            values = [repr(entry).encode() for entry in connection_.xrange(key)]
        else:
            values = []
        for secret in secrets:
            if any(secret.encode() in blob for blob in [key, *values] if blob):
                found.append(key.decode(errors="replace"))
    return found


def _raw_key_in(response) -> str:
    """The new key, shown once in the page that created it."""
    return re.search(r'data-api-key="([^"]+)"', response.content.decode()).group(1)


@pytest.mark.django_db(transaction=True)
def test_after_creating_keys_and_calling_the_api_no_plaintext_key_is_stored_or_logged(
    registered_digits, tmp_path, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    owner = member(email="owner@example.com")
    client = signed_in(owner)
    keys = [_raw_key_in(client.post("/keys/", {"name": "made in the portal"}))]
    keys.append(_raw_key_in(client.post(f"/keys/{ApiKey.objects.get().pk}/roll/", {"grace": "1h"})))
    call_command("create_account", "ops@example.com", "--tier", "pro", "--accept-terms", stdout=(out := StringIO()))
    keys.append(out.getvalue().strip().splitlines()[-1])  # the operator's output, not a log
    assert all(key.startswith("moat_live_") and len(key) == 53 for key in keys), keys

    log_path = tmp_path / "web.log"
    with web_server(log_path=log_path, workers=1) as (base_url, _):
        in_process = Client()
        for key in keys:
            _call_everything(base_url, key)
            in_process.get("/v1/usage", HTTP_AUTHORIZATION=f"Bearer {key}")  # and in-process, into caplog
    querylog_flush()

    secrets = [*keys, *(key.removeprefix("moat_live_") for key in keys)]
    assert _database_holding(secrets) == []
    assert _redis_holding(secrets) == []
    logs = {
        "captured logging": caplog.text,  # every record, unredacted: stricter than what the handlers write
        "captured output": "".join(capfd.readouterr()),
        "web server log": log_path.read_text(),
        "mail": "\n".join(message.body for message in mail.outbox),
    }
    assert "<redacted>" in logs["web server log"]  # the keys sent in URLs reached the log, redacted
    for name, text in logs.items():
        assert not [secret for secret in secrets if secret in text], name


def _call_everything(base_url: str, key: str) -> None:
    """Calls a customer makes, good and bad, with the key where it belongs and where it does not."""
    import urllib.error
    import urllib.request

    calls = [
        ("GET", "/v1/models", None),
        ("POST", "/v1/models/digits/predict", orjson.dumps({"inputs": [[0] * 64]})),
        ("POST", "/v1/models/digits/predict", b"{not json"),
        ("DELETE", "/v1/usage", None),
        *(("GET", url, None) for url in _url_with_key(key)),
    ]
    for method, path, body in calls:
        request = urllib.request.Request(  # noqa: S310 - the loopback server this test started
            base_url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as error:
            error.read()
