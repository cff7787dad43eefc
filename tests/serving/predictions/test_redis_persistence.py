"""A Redis that persists with AOF (as the embedded one does) gives back every query-log record after a crash:
a real redis-server is killed with SIGKILL and restarted on the same data."""

import time

import pytest

from serving.predictions import querylog
from serving.predictions.models import QueryLog
from tests.processes import RedisServer
from tests.serving.predictions.test_querylog import record_for


@pytest.fixture
def api_key(organization):
    from apikeys.models import ApiKey
    from tests.factories import raw_key_for

    raw_key_for(organization)
    return ApiKey.objects.get(organization=organization)


def test_records_survive_a_redis_crash_with_aof(api_key, tmp_path, settings):
    server = RedisServer(tmp_path).start()
    settings.REDIS_URL = server.url
    try:
        records = [record_for(api_key) for _ in range(50)]
        for record in records:
            querylog.querylog_append(record)
        # A killed process keeps what it wrote to its AOF; `appendfsync everysec` bounds a host crash to ~1 s.
        time.sleep(1.2)
        server.kill()

        server.start()
        assert querylog.querylog_pending() == 50
        assert querylog.querylog_flush() == 50
        assert sorted(str(r) for r in QueryLog.objects.values_list("request_id", flat=True)) == sorted(
            r.request_id for r in records
        )
    finally:
        server.kill()
