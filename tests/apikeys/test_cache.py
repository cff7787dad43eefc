"""The hot path's key snapshots: a freeze reaches the API, and a reader holding a row it read just before the
freeze committed cannot write its stale copy over the fresh one."""

import orjson
import pytest

import apikeys.cache as cache
from apikeys.cache import apikey_cache_forget_local, apikey_context
from apikeys.errors import KeyFrozenError
from apikeys.models import ApiKey
from apikeys.services import apikeys_freeze_for_organization
from tests.factories import raw_key_for


def test_a_reader_that_loaded_the_row_before_a_freeze_cannot_resurrect_the_key(
    organization, monkeypatch, django_capture_on_commit_callbacks
):
    raw = raw_key_for(organization)
    original = cache._snapshot_from_database
    calls = []

    def row_read_then_freeze_commits(key_hash: str):
        stale = original(key_hash)
        if not calls:
            calls.append(key_hash)
            # Between this reader's SELECT and its SET, a freeze commits and its hook refreshes Redis.
            with django_capture_on_commit_callbacks(execute=True):
                apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="x")
        return stale

    monkeypatch.setattr(cache, "_snapshot_from_database", row_read_then_freeze_commits)

    assert apikey_context(raw_key=raw).state == "active"  # this request read the row before the freeze
    apikey_cache_forget_local()
    with pytest.raises(KeyFrozenError):
        apikey_context(raw_key=raw)  # and the next one, in any process, sees the freeze
    assert ApiKey.objects.get().state == "frozen"


def test_a_write_while_redis_is_down_still_commits(organization, settings, django_capture_on_commit_callbacks):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        raw_key_for(organization)
    assert ApiKey.objects.filter(organization=organization).count() == 1


def test_while_postgresql_is_unreachable_a_process_keeps_its_last_copy_of_a_key(organization, settings):
    from django.db import OperationalError

    from core.redis import redis_client
    from tests.outages import postgres_unreachable

    raw = raw_key_for(organization)
    known = apikey_context(raw_key=raw)
    settings.API_KEY_CACHE_SECONDS = 0  # the copy is due for a re-read ...
    redis_client().delete(*redis_client().keys("moat:apikey:*"))  # ... and Redis's copy has expired

    with postgres_unreachable():
        assert apikey_context(raw_key=raw) == known
        apikey_cache_forget_local()
        with pytest.raises(OperationalError):  # a key this process never read: the API answers 503
            apikey_context(raw_key=raw)


def test_a_snapshot_written_by_another_release_is_read_for_what_both_know(organization):
    from apikeys.keys import hash_key
    from core.redis import redis_client

    raw = raw_key_for(organization)
    key_hash = hash_key(raw)
    assert apikey_context(raw_key=raw).restricted is False
    apikey_cache_forget_local()
    # During a rolling deploy, a newer release's snapshot has a field this one lacks, and an older one's lacks
    # `restricted`: neither may fail the request.
    stored = orjson.loads(redis_client().get(f"moat:apikey:{key_hash}"))
    redis_client().set(f"moat:apikey:{key_hash}", orjson.dumps({**stored, "field_of_a_later_release": 1}))
    assert apikey_context(raw_key=raw).key_id == stored["key_id"]
    apikey_cache_forget_local()
    del stored["restricted"]
    redis_client().set(f"moat:apikey:{key_hash}", orjson.dumps(stored))
    assert apikey_context(raw_key=raw).restricted is False
