"""Two web hosts behind HAProxy (deploy/haproxy.cfg), each in a network namespace of its own, sharing PostgreSQL and
Redis: the client's address, per-key and per-organization limits, freezes, model activation and the query log behave
exactly as on one host."""

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests
from django.test import Client

from apikeys.models import ApiKey, KeyState
from core.redis import redis_client
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush, querylog_pending
from serving.quotas.limiter import counter_keys
from serving.registry.selectors import version_artifact_file
from serving.registry.services import version_register
from tests.concurrency import simultaneously
from tests.conftest import this_process_on_redis
from tests.factories import OrganizationFactory, UserFactory, member, raw_key_for
from tests.faults.load import (
    assert_failover_kept_its_promises,
    organizations_around_a_master,
    redis_master_killed_under_load,
    wait_until,
)
from tests.hosts import Deployment, Network, deployment, missing_requirements, network, servers_up
from tests.processes import celery_beat, celery_worker
from tests.redis_cluster import RedisClusterServer
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)

if (why := missing_requirements()) and os.environ.get("CI") != "true":
    pytestmark = [pytestmark, pytest.mark.skip(reason=why)]  # in CI a missing requirement fails the tests below


def _predict(url: str, key: str, *, forwarded_for: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return requests.post(f"{url}/v1/models/digits/predict", json={"inputs": [[0] * 64]}, headers=headers, timeout=30)


def _organization(tier: str = "pro"):
    return member(organization=OrganizationFactory(tier=Tier.objects.get(code=tier))).membership.organization


def _answering_hosts(tmp_path) -> int:
    """How many hosts' access logs show a predict."""
    return sum("/v1/models/digits/predict" in (tmp_path / f"web-{i}.log").read_text() for i in range(2))


LAYOUTS = ["one Redis, Celery on Redis", "Redis Cluster, Celery on RabbitMQ"]


@dataclass(frozen=True)
class Layout:
    """The hosts' network, and the shared services of their environment (a cluster listens on the network)."""

    network: Network
    env: dict[str, str]
    cluster: RedisClusterServer | None


@pytest.fixture(params=LAYOUTS)
def layout(request, registered_digits, tmp_path, settings) -> Iterator[Layout]:
    """One Redis (what `make run` uses), then a Redis Cluster of 3 masters and 3 replicas listening on the hosts'
    network with Celery's broker a RabbitMQ node; this test process uses the same."""
    Tier.objects.update(requests_per_minute=100_000, requests_per_hour=1_000_000, requests_per_day=10_000_000)
    env = {"API_KEY_CACHE_SECONDS": "1"}
    with ExitStack() as stack:
        net = stack.enter_context(network(2))
        cluster = None
        if request.param == LAYOUTS[1]:
            cluster = RedisClusterServer(tmp_path / "cluster", host=net.gateway).start()
            stack.callback(cluster.stop)
            stack.enter_context(this_process_on_redis(settings, cluster.url))
            env |= {"REDIS_URL": cluster.url, "CELERY_BROKER_URL": request.getfixturevalue("rabbitmq").url}
        yield Layout(net, env, cluster)


@pytest.fixture
def hosts(layout, tmp_path) -> Iterator[Deployment]:
    with deployment(tmp_path=tmp_path, extra_env=layout.env, on_network=layout.network) as running:
        yield running


def test_both_hosts_serve_through_the_balancer_and_the_log_holds_the_clients_address_not_the_balancers(hosts, tmp_path):
    assert servers_up(hosts.admin_socket) == 2
    key = raw_key_for(_organization())

    answers = [_predict(hosts.url, key, forwarded_for="203.0.113.9") for _ in range(12)]

    assert [answer.status_code for answer in answers] == [200] * 12
    assert _answering_hosts(tmp_path) == 2
    querylog_flush()
    logged = QueryLog.objects.filter(request_id__in=[uuid.UUID(a.headers["X-Request-Id"]) for a in answers])
    # The client wrote 203.0.113.9 itself; HAProxy appended the address it saw (this test's, on loopback), and
    # only that hop is believed: the hosts trust X-Forwarded-For from the balancer alone.
    assert sorted(set(logged.values_list("client_ip", flat=True))) == ["127.0.0.1"]
    assert logged.count() == 12


def test_a_host_reached_directly_from_the_balancers_address_believes_a_forged_hop(hosts):
    key = raw_key_for(_organization())
    answer = _predict(hosts.host_urls[0], key, forwarded_for="203.0.113.9")
    assert answer.status_code == 200
    querylog_flush()
    # This test's address on the hosts' network is the gateway's, which is the balancer's: trusted, so its claim
    # would be read. A host must be reachable only through the balancer; what it sees then is checked above. Here
    # the forged hop is the nearest untrusted one and is what the log shows, which is why TRUSTED_PROXIES must name
    # the balancer alone (README, "Deployment").
    assert QueryLog.objects.get(request_id=answer.headers["X-Request-Id"]).client_ip == "203.0.113.9"


@pytest.mark.parametrize(("requests_sent", "remaining"), [(48, 17)])
def test_concurrent_requests_across_both_hosts_admit_exactly_min_of_requests_and_remaining(
    hosts, tmp_path, requests_sent, remaining
):
    organization = _organization("free")
    key = raw_key_for(organization)
    included = Tier.objects.get(code="free").monthly_included_requests
    assert _predict(hosts.url, key).status_code == 200  # opens the month's counter
    _, prefix = counter_keys(organization_id=organization.pk, key_id=0)
    month = f"{prefix}:mo:{datetime.now(UTC):%Y%m}"
    redis_client().set(month, included - remaining)

    answers = simultaneously(lambda: _predict(hosts.url, key), requests_sent)

    admitted = [answer for answer in answers if answer.status_code == 200]
    assert sorted(answer.status_code for answer in answers) == [200] * remaining + [429] * (requests_sent - remaining)
    assert int(redis_client().get(month)) == included
    assert _answering_hosts(tmp_path) == 2
    # Every answered prediction reaches PostgreSQL exactly once, whichever host answered it.
    querylog_flush()
    answered_ids = {uuid.UUID(answer.headers["X-Request-Id"]) for answer in admitted}
    logged = QueryLog.objects.filter(organization=organization, status=200, endpoint="predict")
    assert logged.count() == remaining + 1
    assert answered_ids <= set(logged.values_list("request_id", flat=True))


def test_a_freeze_made_on_one_host_refuses_the_key_on_the_other_within_the_key_cache_period(hosts):
    organization = _organization()
    key = raw_key_for(organization)
    host_a, host_b = hosts.host_urls
    assert _predict(host_b, key).status_code == 200  # host B has the key in its cache

    staff = requests.Session()
    staff.cookies.set("sessionid", _signed_in_session(UserFactory(is_staff=True, is_superuser=True)))
    page = staff.get(f"{host_a}/console/organizations/{organization.pk}/", timeout=10)
    assert page.status_code == 200
    frozen = staff.post(
        f"{host_a}/console/organizations/{organization.pk}/actions/freeze/",
        data={"freeze-reason": "cloning across hosts", "csrfmiddlewaretoken": staff.cookies["csrftoken"]},
        headers={"Referer": f"{host_a}/console/"},
        timeout=10,
    )
    assert frozen.status_code == 200 and frozen.history and frozen.history[0].status_code == 302
    assert ApiKey.objects.filter(organization=organization, state=KeyState.FROZEN).exists()
    frozen_at = time.monotonic()

    while (answer := _predict(host_b, key)).status_code == 200:
        assert time.monotonic() - frozen_at < 1 + 0.5, "host B still serves the frozen key after its cache period"
        time.sleep(0.05)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "key_frozen"


def _signed_in_session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_a_model_version_activated_once_is_served_by_every_host(hosts, registered_digits):
    key = raw_key_for(_organization("enterprise"))
    served = registered_digits["full"]
    assert _served_versions(hosts, key) == {served.version}

    version_register(
        model=served.model,
        variant="full",
        version="2026.12.05-retrained",
        onnx_bytes=version_artifact_file(version=served).read_bytes(),
        input_name=served.input_name,
        input_layout=served.input_layout,
        output_name=served.output_name,
        output_kind=served.output_kind,
        embedding_output=served.embedding_output,
        metrics=served.metrics,
        provenance=served.provenance,
        input_profile=served.input_profile,
        activate=True,
    )
    activated_at = time.monotonic()

    # Each host re-reads the registry when Redis's generation counter moves, checking at most once a second.
    while _served_versions(hosts, key) != {"2026.12.05-retrained"}:
        assert time.monotonic() - activated_at < 3, f"hosts still serve {_served_versions(hosts, key)}"
        time.sleep(0.1)


def _served_versions(hosts, key: str) -> set[str]:
    """The version each host answers a prediction with (enterprise: the full variant)."""
    versions = set()
    for host in hosts.host_urls:
        answer = _predict(host, key)
        assert answer.status_code == 200, answer.text
        versions.add(answer.json()["version"])
    return versions


@pytest.mark.parametrize("layout", [LAYOUTS[1]], indirect=True)
def test_a_redis_master_killed_under_load_across_both_hosts(layout, hosts, tmp_path):
    """kill -9 of the Redis master serving an enterprise and a pro organization's shard, while they and a third
    organization (its shard on another master) send steady traffic through HAProxy to both hosts, and a Celery
    worker and beat on RabbitMQ flush the query log. The promise of the README's failover section, across hosts:
    enterprise never sees a 5xx, the public key gets 200 or 503, the bystander is served throughout; nothing is
    recorded (so billed) twice, and the only answered calls not recorded were in flight at the kill."""
    cluster = layout.cluster
    victim, organizations = organizations_around_a_master(cluster, _organization)
    keys = {name: raw_key_for(organization) for name, organization in organizations.items()}
    with (
        celery_worker(extra_env=layout.env, log_path=tmp_path / "worker.log"),
        celery_beat(extra_env=layout.env, log_path=tmp_path / "beat.log"),
    ):
        failover = redis_master_killed_under_load(cluster, victim, hosts.url, keys, limit=100_000)
        wait_until(lambda: querylog_pending() == 0, timeout=30, what="the Celery worker flushed the query log")

    assert _answering_hosts(tmp_path) == 2
    assert_failover_kept_its_promises(failover, organizations, limit=100_000)
