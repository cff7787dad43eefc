import uuid

import django.db
import pytest

from core.redis import redis_client
from serving.predictions import querylog
from serving.predictions.models import QueryLog
from serving.predictions.querylog import QueryRecord, querylog_append, querylog_flush, querylog_pending
from tests.factories import raw_key_for


def record_for(api_key, **overrides) -> QueryRecord:
    fields = {
        "organization_id": api_key.organization_id,
        "api_key_id": api_key.pk,
        "tier_code": "free",
        "endpoint": "predict",
        "status": 200,
        "latency_us": 900,
        "client_ip": "198.51.100.4",
        "user_agent": "curl/8",
        "model_slug": "digits",
        "model_version": "v1",
        "variant": "defended",
        "inputs": bytes(range(64)) + bytes([16] * 64),
        "labels": ["3", "1"],
        "clean_labels": ["3", "7"],
        "confidences": [0.9, 0.5],
        "watermarked": [False, True],
    }
    return QueryRecord(**{**fields, **overrides})


@pytest.fixture
def api_key(organization):
    from apikeys.models import ApiKey

    raw_key_for(organization)
    return ApiKey.objects.get(organization=organization)


def test_records_reach_postgresql_with_every_field_and_the_input_hashes(api_key):
    record = record_for(api_key)
    querylog_append(record)
    assert querylog_pending() == 1

    assert querylog_flush() == 1

    row = QueryLog.objects.get()
    assert str(row.request_id) == record.request_id
    assert (row.organization_id, row.api_key_id, row.tier_code, row.status) == (
        api_key.organization_id,
        api_key.pk,
        "free",
        200,
    )
    assert bytes(row.inputs) == record.inputs and row.batch_size == 2
    import hashlib

    assert (
        bytes(row.input_hashes) == hashlib.sha256(bytes(range(64))).digest() + hashlib.sha256(bytes([16] * 64)).digest()
    )
    assert (row.labels, row.clean_labels, row.confidences, row.watermarked) == (
        ["3", "1"],
        ["3", "7"],
        [0.9, 0.5],
        [False, True],
    )
    assert (row.client_ip, row.user_agent, row.latency_us) == ("198.51.100.4", "curl/8", 900)
    assert querylog_pending() == 0
    api_key.refresh_from_db()
    assert api_key.last_used_at == row.created_at


def test_a_record_delivered_twice_is_stored_once(api_key):
    record = record_for(api_key)
    querylog_append(record)
    querylog_append(record)

    assert querylog_flush() == 2
    assert QueryLog.objects.filter(request_id=uuid.UUID(record.request_id)).count() == 1


def test_entries_of_a_flusher_killed_before_acknowledging_are_claimed_again(api_key, monkeypatch):
    records = [record_for(api_key) for _ in range(3)]
    for record in records:
        querylog_append(record)
    # A flusher reads the entries and dies before it stores them: they stay pending in the group.
    connection = redis_client()
    stream = querylog.stream_key(api_key.organization_id)
    querylog._ensure_group(connection, stream)
    connection.xreadgroup(querylog.GROUP, "dead-worker", {stream: ">"}, count=10)
    assert querylog_flush() == 0  # not idle long enough to be claimed yet
    monkeypatch.setattr(querylog, "_CLAIM_IDLE_MS", 0)

    assert querylog_flush() == 3
    assert sorted(str(r) for r in QueryLog.objects.values_list("request_id", flat=True)) == sorted(
        r.request_id for r in records
    )
    assert querylog_pending() == 0


def test_a_flusher_that_dies_after_storing_but_before_acknowledging_duplicates_nothing(api_key, monkeypatch):
    for _ in range(5):
        querylog_append(record_for(api_key))
    connection = redis_client()
    original_ack = connection.xack
    monkeypatch.setattr(type(connection), "xack", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        querylog_flush()
    monkeypatch.undo()
    assert QueryLog.objects.count() == 5
    monkeypatch.setattr(querylog, "_CLAIM_IDLE_MS", 0)

    querylog_flush()

    assert QueryLog.objects.count() == 5
    assert querylog_pending() == 0
    assert original_ack is not None


def test_acknowledging_and_deleting_are_one_step_so_a_killed_flusher_leaves_no_orphan_in_the_stream(
    api_key, monkeypatch
):
    # The flusher used to acknowledge, then delete: killed in between, acknowledged entries stayed in the stream,
    # never read again, and the backlog never drained (CI caught 4 left after a kill -9). Now both are one MULTI:
    # killed before it runs, the entries stay pending and are settled by the next flush.
    import redis.client

    for _ in range(5):
        querylog_append(record_for(api_key))
    monkeypatch.setattr(redis.client.Pipeline, "execute", lambda self, *a, **k: (_ for _ in ()).throw(SystemExit()))
    with pytest.raises(SystemExit):
        querylog_flush()
    monkeypatch.undo()
    assert QueryLog.objects.count() == 5 and querylog_pending() == 5  # stored, neither acknowledged nor deleted
    monkeypatch.setattr(querylog, "_CLAIM_IDLE_MS", 0)

    querylog_flush()

    assert QueryLog.objects.count() == 5
    assert querylog_pending() == 0


def test_a_flush_that_failed_on_postgresql_retries_its_own_entries_at_once(api_key):
    from tests.outages import postgres_unreachable

    records = [record_for(api_key) for _ in range(4)]
    for record in records:
        querylog_append(record)
    with postgres_unreachable(), pytest.raises(django.db.OperationalError):
        querylog_flush()  # read, not stored, not acknowledged: pending under this process's consumer name

    assert querylog_flush() == 4  # the next run takes them back at once, not after _CLAIM_IDLE_MS
    assert sorted(str(r) for r in QueryLog.objects.values_list("request_id", flat=True)) == sorted(
        r.request_id for r in records
    )
    assert querylog_pending() == 0


def test_flushing_an_empty_log_does_nothing(db):
    assert querylog_flush() == 0


def test_hostile_text_survives_the_copy_format_unchanged(api_key):
    agent = 'curl\t"quoted"\\back\nslash\r{x,y}'
    label = 'a "label", with {braces} \\ and \t tab'
    querylog_append(record_for(api_key, user_agent=agent, labels=[label, "1"], clean_labels=["", "NULL"]))

    querylog_flush()

    row = QueryLog.objects.get()
    assert row.user_agent == agent
    assert row.labels == [label, "1"] and row.clean_labels == ["", "NULL"]


def test_a_nul_in_the_user_agent_is_dropped_and_the_rest_kept(api_key):
    # PostgreSQL's text cannot hold NUL: the flush would fail for the whole batch if it were passed on.
    querylog_append(record_for(api_key, user_agent="bot\x00\\x00 1.0"))

    assert querylog_flush() == 1
    assert QueryLog.objects.get().user_agent == "bot\\x00 1.0"


def test_a_call_without_inputs_stores_no_input_columns(api_key):
    querylog_append(
        record_for(
            api_key,
            status=400,
            error_code="invalid_input",
            inputs=b"",
            labels=[],
            clean_labels=[],
            confidences=[],
            watermarked=[],
            client_ip=None,
        )
    )
    querylog_flush()
    row = QueryLog.objects.get()
    assert (row.inputs, row.input_hashes, row.batch_size, row.client_ip, row.labels) == (None, None, 0, None, [])


def test_a_record_of_a_deleted_organization_does_not_block_anyone_elses(api_key, other_owner):
    from apikeys.models import ApiKey

    raw_key_for(other_owner.membership.organization)
    other_key = ApiKey.objects.get(organization=other_owner.membership.organization)
    querylog_append(record_for(api_key))
    querylog_append(record_for(other_key))
    deleted_organization_id = api_key.organization_id
    api_key.organization.delete()

    assert querylog_flush() == 2

    assert set(QueryLog.objects.values_list("organization_id", flat=True)) == {
        deleted_organization_id,
        other_key.organization_id,
    }
    assert querylog_pending() == 0
