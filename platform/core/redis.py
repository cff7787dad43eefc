"""One Redis client per process and URL, with short timeouts so a slow Redis cannot hang a request.

`REDIS_URL` names either one Redis (`redis://`, `rediss://`, `unix://`, as redis-py spells them) or a Redis Cluster
by some of its nodes: `redis+cluster://[user:password@]host1:port1,host2:port2/` (`rediss+cluster://` for TLS). The
nodes listed are only where the client starts: it asks them for the cluster's layout (CLUSTER SLOTS) and follows
it, so one reachable node is enough, and listing them all survives any one being down at start. A cluster has only
database 0. `parse_redis_url` is the one place that reads the URL; everything that talks to Redis (the quota
scripts, the query-log streams, the key cache, the limiters, Django's cache) gets its client from here.

Every key that a script or a transaction touches together carries one hash tag (`moat:{q3}:...`,
`moat:{pwreset}:...`), so each such group lives in one cluster slot. The circuit breaker below is per master, so a
master that fails over sends only its own keys to the Redis-down paths.
"""

import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException, RedisClusterUnreachableError, SlotNotCoveredError
from redis.retry import Retry

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
SINGLE_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class ClusterAddress:
    """A Redis Cluster as `REDIS_URL` names it: the nodes to start from, and how to reach them."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    options: dict = field(default_factory=dict)


def parse_redis_url(url: str) -> ClusterAddress | None:
    """The cluster a `redis+cluster://` URL names, or None for a single Redis's URL (left to redis-py). Raises
    ImproperlyConfigured for a URL neither kind accepts: an unknown scheme, a cluster without nodes, a node without
    a valid port, a database other than 0 on a cluster, query parameters on a cluster URL."""
    parts = urlsplit(url)
    if parts.scheme in SINGLE_SCHEMES:
        return None
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ImproperlyConfigured(
            f"REDIS_URL has the scheme {parts.scheme!r}: use redis://, rediss:// or unix:// for one Redis, or "
            "redis+cluster://host1:port1,host2:port2/ (rediss+cluster:// for TLS) for a Redis Cluster."
        )
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, password = None, None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) if has_password else None
    nodes = tuple(_cluster_node(node, url) for node in hosts.split(",") if node.strip())
    if not nodes:
        raise ImproperlyConfigured("REDIS_URL names a Redis Cluster without any node: redis+cluster://host:port,...")
    database = parts.path.strip("/")
    if database not in ("", "0"):
        raise ImproperlyConfigured(
            f"REDIS_URL names database {database!r} of a Redis Cluster: a cluster has only database 0 (give no "
            "database, or /0)."
        )
    if parts.query:
        query = dict(parse_qsl(parts.query))
        if set(query) - {"db"} or query.get("db", "0") != "0":
            raise ImproperlyConfigured(
                "REDIS_URL: a Redis Cluster URL takes no query parameters (and a cluster has only database 0)."
            )
    return ClusterAddress(nodes=nodes, username=username, password=password, ssl=CLUSTER_SCHEMES[parts.scheme])


def _cluster_node(node: str, url: str) -> tuple[str, int]:
    node = node.strip()
    if node.startswith("["):  # an IPv6 address: [::1]:7000
        host, _, rest = node[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = node.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ImproperlyConfigured(
            f"REDIS_URL: the cluster node {node!r} is not host:port (every node needs its port, e.g. 10.0.0.5:7000)."
        )
    return host, int(port)


def is_cluster_url(url: str) -> bool:
    return parse_redis_url(url) is not None


# Errors of redis-py's cluster client that mean "this part of Redis cannot be reached now", which it raises outside
# the redis.RedisError family. They become redis.ConnectionError, so every caller's existing Redis-down policy (503
# for the public, the fallback for enterprise, PostgreSQL for key checks) applies unchanged to a cluster. Other
# cluster errors (a command whose keys span slots) are programming errors and stay what they are.
_UNREACHABLE = (SlotNotCoveredError, RedisClusterUnreachableError)


class _Pipeline(ClusterPipeline):
    def execute(self, raise_on_error: bool = True):
        try:
            return super().execute(raise_on_error=raise_on_error)
        except _UNREACHABLE as exc:
            raise redis.ConnectionError(str(exc)) from exc


class MoatRedisCluster(RedisCluster):
    """redis-py's cluster client, whose "cannot reach the slot" errors are redis.ConnectionErrors."""

    def execute_command(self, *args, **kwargs):
        try:
            return super().execute_command(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise redis.ConnectionError(str(exc)) from exc

    def pipeline(self, transaction=None, shard_hint=None):
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        # redis-py builds the pipeline from this client's configuration (a long list of arguments); rather than copy
        # that list, the pipeline it built becomes a _Pipeline, which adds nothing but the errors' translation.
        pipe.__class__ = _Pipeline
        return pipe


def cluster_client(address: ClusterAddress, *, timeout: float) -> MoatRedisCluster:
    """A cluster client that gives up quickly and follows a failover.

    A client learns that the cluster's layout changed from an error: the first command sent to a master that is
    gone fails, and asks for a refresh of the layout (CLUSTER SLOTS). One retry, with no backoff, runs that refresh
    when it is due (at most every half second) and sends the command to the promoted replica, so a process that was
    idle during a failover does not fail its first call after it. More retries would only hold a request while the
    cluster elects (the caller's breaker and fallback are for that): at most two attempts of `timeout` each.
    Raises redis.ConnectionError when no listed node answers."""
    try:
        return MoatRedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            username=address.username,
            password=address.password,
            ssl=address.ssl,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), retries=1),
            # A web process started while a master fails over still serves the slots that have one.
            require_full_coverage=False,
            topology_refresh_min_interval=0.5,
        )
    except RedisClusterException as exc:
        raise redis.ConnectionError(f"no node of the Redis Cluster answered: {exc}") from exc


@lru_cache(maxsize=4)
def client_for(url: str, timeout: float) -> redis.Redis | MoatRedisCluster:
    """The process's client for a URL (one per URL and timeout: its connection pools and the cluster's layout)."""
    address = parse_redis_url(url)
    if address is not None:
        return cluster_client(address, timeout=timeout)
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30)


def redis_client() -> redis.Redis | MoatRedisCluster:
    """The client for settings.REDIS_URL (looked up per call, so a test can point the process elsewhere): a
    redis.Redis, or a MoatRedisCluster when the URL names a cluster. Both take the same commands for what Moat does
    (single-slot scripts and transactions, pipelines, streams); `SCAN`, `FLUSHDB` and `SCRIPT LOAD` reach every
    master of a cluster."""
    return client_for(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


# A circuit breaker: after a failure, calls skip Redis for a second instead of each waiting out the timeout, so
# an outage costs the fallback paths nothing and exact limiting resumes within about a second of Redis returning.
# One breaker per master: on a single Redis that is one breaker for everything, as ever; on a cluster, a master that
# fails (or fails over) sends only the keys it serves to the fallback paths, and the organizations whose shards other
# masters serve keep their exact limits. A call without a key, or whose master cannot be told, uses the breaker of
# the whole (which every call heeds).
_BREAKER_SECONDS = 1.0
_WHOLE = ""
_open_until: dict[str, float] = {}


def _scope(key: str | None) -> str:
    """The breaker a key answers to: the master its slot is sent to now, as this process's cluster client knows it
    (the client learns a failover from its first error there, and the promoted replica has a breaker of its own)."""
    if key is None:
        return _WHOLE
    try:
        client = redis_client()
        if not isinstance(client, RedisCluster):
            return _WHOLE
        return client.get_node_from_key(key).name
    except (redis.RedisError, RedisClusterException):
        return _WHOLE


def redis_breaker_open(key: str | None = None) -> bool:
    """Whether calls for `key` (any call, without one) skip Redis now."""
    if not _open_until:  # no breaker ever tripped: the prediction path's usual case, without the key's lookup
        return False
    now = time.monotonic()
    if now < _open_until.get(_WHOLE, 0.0):
        return True
    return key is not None and now < _open_until.get(_scope(key), 0.0)


def redis_breaker_trip(key: str | None = None) -> None:
    """Open the breaker of `key`'s master (without a key: of the whole) for a second after a failed call. An open
    breaker is not extended: a call refused because the breaker was open says nothing about Redis, and extending on
    it kept the breaker open for as long as the load lasted, long after Redis was back."""
    scope = _scope(key)
    now = time.monotonic()
    if now >= _open_until.get(scope, 0.0):
        _open_until[scope] = now + _BREAKER_SECONDS


def redis_breaker_reset() -> None:
    _open_until.clear()


def guarded_redis_client(key: str | None = None) -> redis.Redis | MoatRedisCluster:
    """The client, or redis.ConnectionError at once while the breaker of `key`'s master (or of the whole) is open."""
    if redis_breaker_open(key):
        raise redis.ConnectionError("Redis was unreachable a moment ago")
    return redis_client()
