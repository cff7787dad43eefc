import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import Client

from accounts.models import Organization, User
from tests.factories import member
from tests.rabbitmq import RabbitMQServer, rabbitmq_server_command

# The demo model's fixtures (demo_run, model_artifact_dir, registered_digits), for serving and abuse tests alike.
pytest_plugins = ["tests.model_fixtures"]


@pytest.fixture(autouse=True)
def _clean_redis():
    """Every test starts with an empty (test-only) Redis database and empty in-process snapshots: counters and
    caches never leak between tests."""
    from apikeys.cache import apikey_cache_forget_local
    from core.redis import redis_breaker_reset
    from serving.predictions.runtime import serving_models_reload
    from tiers.cache import tier_cache_clear

    url = settings.REDIS_URL
    flush_redis(url)
    apikey_cache_forget_local()
    tier_cache_clear()
    serving_models_reload()
    redis_breaker_reset()
    yield
    flush_redis(url)


@contextmanager
def this_process_on_redis(settings, url: str) -> Iterator[None]:
    """This test process's Redis and Django's cache are `url` (e.g. a Redis Cluster), empty, until the end (the
    `settings` fixture restores the URLs after the test)."""
    from apikeys.cache import apikey_cache_forget_local
    from core.redis import redis_breaker_reset
    from serving.quotas.limiter import fallback_reset

    settings.REDIS_URL = url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url, "OPTIONS": {"socket_timeout": 2}}}
    flush_redis(url)
    redis_breaker_reset()
    apikey_cache_forget_local()
    fallback_reset()
    try:
        yield
    finally:
        flush_redis(url)


def flush_redis(url: str) -> None:
    """Empty the tests' Redis: its logical database, or every master of a Redis Cluster."""
    from core.redis import cluster_client, parse_redis_url

    address = parse_redis_url(url)
    connection = redis.Redis.from_url(url) if address is None else cluster_client(address, timeout=5.0)
    try:
        connection.flushdb()  # a cluster client sends it to every master
    finally:
        connection.close()


# The data migrations' functions, in migration order: (module, function).
SEED_MIGRATIONS = (
    ("tiers.migrations.0002_seed_tiers", "seed"),
    ("tiers.migrations.0003_tier_defenses", "seed"),
    ("tiers.migrations.0005_region_watermark_fraction", "raise_fraction"),
    ("legal.migrations.0002_seed_terms", "seed"),
    ("abuse.migrations.0002_audit_append_only_and_reviewers", "seed"),  # the "Abuse reviewers" group
)


def reseed_migration_data() -> None:
    """Put back the rows the data migrations leave: the tiers (as the last migration left them), the Terms and the
    reviewers' group."""
    import importlib

    from django.apps import apps

    for module, function in SEED_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture(autouse=True)
def _seed_data_for_transactional_tests(request):
    """Transactional tests end by emptying every table, the migrations' seed rows too: put them back first, so each
    such test starts from the database a fresh migration leaves."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    reseed_migration_data()


@pytest.fixture
def owner(db) -> User:
    return member(email="owner@example.com")


@pytest.fixture
def organization(owner) -> Organization:
    return owner.membership.organization


@pytest.fixture
def other_owner(db) -> User:
    """The owner of a second organization: the tenant that must never see the first one's data."""
    return member(email="rival@example.org")


def signed_in(user: User) -> Client:
    """A client with the user's session. (The login page itself is specified in tests/accounts/test_views.py.)"""
    client = Client()
    client.force_login(user, backend="accounts.backends.EmailBackend")
    return client


@pytest.fixture
def owner_client(owner) -> Client:
    return signed_in(owner)


# --- Playwright driving Debian's Chromium against pytest-django's live server (one browser per session) ---
# Debian's chromium package; MOAT_CHROMIUM points elsewhere (e.g. on Ubuntu, where apt's chromium is a snap).
CHROMIUM = Path(os.environ.get("MOAT_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling out, and this network refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is missing at {CHROMIUM}: the test command installs it (apt-get).")
        pytest.skip("Chromium is not installed; `make test` installs it")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory) -> Iterator[RabbitMQServer]:
    """One private RabbitMQ node for the session (a few seconds to start), with the consumer timeout a deployment
    on RabbitMQ before 3.12 sets in rabbitmq.conf (later ones take the worker's consumer argument)."""
    if rabbitmq_server_command() is None:
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is missing: the test command installs it (apt-get).")
        pytest.skip("RabbitMQ is not installed; `make test` installs it")
    server = RabbitMQServer(
        tmp_path_factory.mktemp("rabbitmq"), consumer_timeout_seconds=settings.RABBITMQ_CONSUMER_TIMEOUT_SECONDS
    ).start()
    print(f"\nRabbitMQ node {server.nodename} accepted connections {server.startup_seconds:.1f} s after launch")
    yield server
    server.stop()
