"""The client's address and user agent, computed one way for every app (`rf` is pytest-django's RequestFactory)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from core.http import client_ip, user_agent


def test_client_ip_is_remote_addr_without_trusted_proxies(rf, settings):
    settings.TRUSTED_PROXIES = []

    assert client_ip(rf.get("/", REMOTE_ADDR="198.51.100.7")) == "198.51.100.7"


def test_client_ip_ignores_forwarded_for_without_trusted_proxies(rf, settings):
    settings.TRUSTED_PROXIES = []
    request = rf.get("/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert client_ip(request) == "198.51.100.7"


def test_client_ip_ignores_a_forwarded_for_header_spoofed_by_an_untrusted_client(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="10.0.0.1, 203.0.113.9")

    assert client_ip(request) == "198.51.100.7"


def test_client_ip_behind_a_trusted_proxy_is_the_forwarded_client(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert client_ip(request) == "203.0.113.9"


def test_client_ip_trusts_a_single_proxy_address_as_well_as_a_network(rf, settings):
    settings.TRUSTED_PROXIES = ["192.0.2.10"]

    assert client_ip(rf.get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.9")) == "203.0.113.9"
    assert client_ip(rf.get("/", REMOTE_ADDR="192.0.2.11", HTTP_X_FORWARDED_FOR="203.0.113.9")) == "192.0.2.11"


def test_client_ip_walks_a_chain_of_trusted_proxies_to_the_nearest_untrusted_hop(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "172.16.0.0/12"]
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9, 172.16.4.4, 10.1.1.1"
    )

    assert client_ip(request) == "203.0.113.9"


def test_client_ip_never_believes_hops_the_client_wrote_before_the_first_untrusted_one(rf, settings):
    """A client may prepend anything; only what our own proxies appended counts."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.1.1.1, 10.9.9.9, 203.0.113.9")

    assert client_ip(request) == "203.0.113.9"


def test_client_ip_ignores_empty_hops_and_whitespace(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=" 203.0.113.9 , , 10.0.0.9 ,")

    assert client_ip(request) == "203.0.113.9"


@pytest.mark.parametrize("chain", ["garbage", "203.0.113.9, not-an-ip", "203.0.113.9:4711", "203.0.113.9, 10.0.0.300"])
def test_client_ip_falls_back_to_the_proxy_when_the_nearest_hops_are_malformed(rf, settings, chain):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=chain)) == "10.0.0.5"


def test_client_ip_is_the_proxy_when_every_hop_is_a_trusted_proxy(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="10.2.2.2, 10.3.3.3")) == "10.0.0.5"


def test_client_ip_is_the_proxy_when_it_sends_no_forwarded_for(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.5")) == "10.0.0.5"


def test_client_ip_supports_ipv6_proxies_and_clients(rf, settings):
    settings.TRUSTED_PROXIES = ["fd00::/8"]
    request = rf.get("/", REMOTE_ADDR="fd00::1", HTTP_X_FORWARDED_FOR="2001:db8::42")

    assert client_ip(request) == "2001:db8::42"


def test_client_ip_follows_a_change_of_trusted_proxies(rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request) == "203.0.113.9"

    settings.TRUSTED_PROXIES = ["192.168.0.0/16"]

    assert client_ip(request) == "10.0.0.5"


@pytest.mark.parametrize("remote", ["", None])
def test_client_ip_is_none_without_remote_addr(rf, settings, remote):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.9")
    if remote is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote

    assert client_ip(request) is None


def test_user_agent_is_the_header(rf):
    assert user_agent(rf.get("/", HTTP_USER_AGENT="Mozilla/5.0 (X11)")) == "Mozilla/5.0 (X11)"


def test_user_agent_is_empty_without_the_header(rf):
    assert user_agent(rf.get("/")) == ""


def test_user_agent_is_cut_to_512_characters(rf):
    assert user_agent(rf.get("/", HTTP_USER_AGENT="A" * 2000)) == "A" * 512


# --- TRUSTED_PROXIES is checked when the settings load -----------------------------------------------------------


def _manage_check(trusted_proxies: str) -> subprocess.CompletedProcess:
    """`manage.py check` in a fresh process with the real settings and this TRUSTED_PROXIES."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": django_settings.REDIS_URL,
        "TRUSTED_PROXIES": trusted_proxies,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("bad", ["proxy.internal", "10.0.0.0/33", "10.0.0.300", " 192.168.0.0/16"])
def test_a_malformed_trusted_proxies_entry_stops_the_process_at_startup_naming_the_entry(bad):
    result = _manage_check(f"10.0.0.0/8,{bad}")

    assert result.returncode != 0
    assert (
        f"django.core.exceptions.ImproperlyConfigured: TRUSTED_PROXIES: {bad!r} is not an IP address or network "
        "(e.g. 10.0.0.0/8, 192.0.2.10, fd00::/8)."
    ) in result.stderr


def test_well_formed_trusted_proxies_pass_the_startup_check():
    result = _manage_check("10.0.0.0/8,192.0.2.10,fd00::/8,172.16.0.1/12")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
