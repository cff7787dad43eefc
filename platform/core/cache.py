"""Django's Redis cache backend, on a single Redis or a Redis Cluster (whichever `REDIS_URL` names).

Django's own backend builds a `redis.Redis` per server and splits its LOCATION at commas (several servers, read
replicas), so it cannot reach a cluster: a `redis+cluster://` URL here gets the process's cluster client from
`core.redis` instead. A single Redis's URL is served by Django's code unchanged. On a cluster, `get_many` reads with
redis-py's per-slot MGET (cache keys carry no hash tag, so one MGET would span slots) and `set_many` sends one SET
per key in a pipeline (redis-py refuses MSET in a cluster pipeline); every other operation Django sends touches one
key, or is split by slot by redis-py (DEL of many keys), or reaches every master (FLUSHDB).
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

from core.redis import client_for, is_cluster_url


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, servers, **options) -> None:
        super().__init__(servers, **options)
        self._cluster = len(servers) == 1 and is_cluster_url(servers[0])
        self._timeout = float(options.get("socket_timeout") or 5.0)

    def get_client(self, key=None, *, write=False):
        if not self._cluster:
            return super().get_client(key, write=write)
        # The process's cluster client (core.redis), not one per thread: Django makes a cache object per thread.
        return client_for(self._servers[0], self._timeout)

    def get_many(self, keys):
        if not self._cluster:
            return super().get_many(keys)
        values = self.get_client(None).mget_nonatomic(keys)
        found = zip(keys, values, strict=True)
        return {key: self._serializer.loads(value) for key, value in found if value is not None}

    def set_many(self, data, timeout):
        if not self._cluster:
            return super().set_many(data, timeout)
        client = self.get_client(None, write=True)
        if timeout == 0:  # as Django's set(): an expired value is no value
            client.delete(*data)
            return None
        pipe = client.pipeline(transaction=False)
        for key, value in data.items():
            pipe.set(key, self._serializer.dumps(value), ex=timeout)
        pipe.execute()
        return None


class RedisCache(DjangoRedisCache):
    """Django's RedisCache; LOCATION is one URL (never split at commas: a cluster URL lists its nodes that way)."""

    def __init__(self, server, params) -> None:
        super().__init__([server] if isinstance(server, str) else server, params)
        self._class = RedisCacheClient
