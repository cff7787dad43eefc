"""The /v1 API while PostgreSQL is unreachable: what the process already holds (keys, tiers, models) keeps being
served; what needs the database answers 503 `service_unavailable` with Retry-After at once, never a 500."""

import orjson
import pytest

from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush
from serving.predictions.runtime import serving_models_reload
from tests.outages import postgres_unreachable
from tests.serving.predictions.test_api import call, key_on, predict
from tiers.cache import tier_cache_clear

pytestmark = pytest.mark.usefixtures("registered_digits")


def unavailable(response) -> bool:
    body = orjson.loads(response.content)
    return (
        response.status_code == 503
        and response["Retry-After"] == "5"
        and body == {"error": {"code": "service_unavailable", "message": body["error"]["message"]}}
    )


def test_a_known_key_is_served_from_memory_while_the_tiers_and_models_cannot_be_reread():
    key = key_on("pro")
    assert predict(key, [[0] * 64]).status_code == 200
    tier_cache_clear()  # both re-reads are due
    serving_models_reload()

    with postgres_unreachable():
        response = predict(key, [[0] * 64])

    assert response.status_code == 200
    assert orjson.loads(response.content)["predictions"][0]["label"] in [str(d) for d in range(10)]


def test_a_key_this_process_has_never_seen_answers_503_and_the_key_is_served_once_postgresql_is_back():
    key = key_on("pro")  # its snapshot is in neither Redis nor this process's memory

    with postgres_unreachable():
        response = predict(key, [[0] * 64])

    assert unavailable(response)
    assert predict(key, [[0] * 64]).status_code == 200


def test_usage_needs_postgresql_and_answers_503_with_a_record_of_the_call():
    key = key_on("pro")
    assert call("get", "/v1/usage", key).status_code == 200

    with postgres_unreachable():
        response = call("get", "/v1/usage", key)

    assert unavailable(response)
    querylog_flush()
    assert list(
        QueryLog.objects.filter(endpoint="usage").order_by("created_at").values_list("status", "error_code")
    ) == [
        (200, ""),
        (503, "service_unavailable"),
    ]


def test_a_process_that_never_read_the_tiers_answers_503():
    key = key_on("enterprise")
    assert predict(key, [[0] * 64]).status_code == 200
    import tiers.cache

    tiers.cache._snapshot = {}  # a fresh process

    with postgres_unreachable():
        response = predict(key, [[0] * 64])

    assert unavailable(response)
