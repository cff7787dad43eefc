"""Steady load on a real web server from a few client threads, every outcome recorded with its timing, so a fault
test can say what each client saw before, during and after the fault."""

import collections
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

import orjson

# Longer than any hang the tests forbid, so a hang is measured rather than cut short.
CLIENT_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    elapsed: float
    status: int  # 0: no HTTP answer at all (connection refused or dropped)
    headers: Message | None
    body: bytes

    def json(self) -> dict:
        return orjson.loads(self.body)


def send(request: urllib.request.Request) -> Outcome:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_SECONDS) as response:  # noqa: S310 - loopback
            return Outcome(started, time.monotonic() - started, response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Outcome(started, time.monotonic() - started, error.code, error.headers, error.read())
    except OSError:
        return Outcome(started, time.monotonic() - started, 0, None, b"")


def api_request(base_url: str, path: str, key: str, body: object | None = None) -> urllib.request.Request:
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(  # noqa: S310 - the loopback server the test started
        base_url + path, data=None if body is None else orjson.dumps(body), headers=headers
    )


def predict_request(base_url: str, key: str, *, batch: int = 1) -> urllib.request.Request:
    return api_request(
        base_url, "/v1/models/digits/predict", key, {"inputs": [[float(i % 17) for i in range(64)]] * batch}
    )


class Load:
    """Client threads, each sending one kind of request in a loop (with an optional pause) until the block ends."""

    def __init__(self) -> None:
        self.outcomes: dict[str, list[Outcome]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, name: str, request: Callable[[], urllib.request.Request], *, threads: int = 1, pause: float = 0.0):
        outcomes = self.outcomes.setdefault(name, [])

        def loop() -> None:
            while not self._stop.is_set():
                outcomes.append(send(request()))
                if pause:
                    self._stop.wait(pause)

        self._threads += [threading.Thread(target=loop, daemon=True) for _ in range(threads)]

    def start(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def all(self) -> list[Outcome]:
        return [outcome for outcomes in self.outcomes.values() for outcome in outcomes]


def first_success_after(outcomes: list[Outcome], moment: float) -> float | None:
    """Seconds from `moment` to the start of the first request started after it that answered 200."""
    starts = [o.started for o in outcomes if o.started >= moment and o.status == 200]
    return min(starts) - moment if starts else None


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll until `condition()` holds; returns the seconds it took, or fails the test at the deadline."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


def in_flight(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    """The calls under way at some moment between `start` and `end`."""
    return [o for o in outcomes if o.started <= end and o.started + o.elapsed >= start]


def assert_recorded_once_and_counted(
    organization, outcomes: list[Outcome], *, batch: int, fault_started: float, fault_ended: float
) -> tuple[int, int, int]:
    """After a Redis master died under load (and the query log was flushed): no call of the organization is
    recorded (so billed) twice; the only answered calls not recorded are some of those in flight at the fault (their
    records had not reached the replica) and their counters went with them, so the month's counter in Redis equals
    the units PostgreSQL recorded. Returns (answered, recorded, lost)."""
    from datetime import UTC, datetime

    from django.db.models import Sum

    from core.redis import redis_client
    from serving.predictions.models import QueryLog
    from serving.quotas.limiter import counter_keys

    answered = {o.headers["X-Request-Id"] for o in outcomes if o.status == 200}
    during = in_flight(outcomes, fault_started, fault_ended)
    answered_during = {o.headers["X-Request-Id"] for o in during if o.status == 200}
    stored = QueryLog.objects.filter(organization=organization, endpoint="predict", status=200)
    stored_ids = [str(request_id) for request_id in stored.values_list("request_id", flat=True)]
    assert len(stored_ids) == len(set(stored_ids))  # nothing recorded (so billed) twice
    lost = answered - set(stored_ids)
    assert lost <= answered_during, f"lost, and not in flight at the fault: {len(lost - answered_during)}"
    # Recorded without a 200: a public call whose script ran in the master's last instant, its answer lost (503; an
    # error answer carries no request id, so they are counted).
    assert len(set(stored_ids) - answered) <= sum(o.status != 200 for o in during)
    units = stored.aggregate(units=Sum("batch_size"))["units"] or 0
    assert units == len(stored_ids) * batch
    _, prefix = counter_keys(organization_id=organization.pk, key_id=0)
    month = datetime.now(UTC).strftime("%Y%m")
    assert int(redis_client().get(f"{prefix}:mo:{month}") or 0) == units  # the counter and the records agree
    return len(answered), len(stored_ids), len(lost)


@dataclass(frozen=True)
class Failover:
    """What each client saw while a Redis master was killed, and when: the kill's start and end, the replica's
    promotion, and exact limiting's return for every client."""

    outcomes: dict[str, list[Outcome]]
    killing: float
    killed: float
    promoted: float
    back: float


def redis_master_killed_under_load(
    cluster, victim: int, base_url: str, keys: dict[str, str], *, limit: int
) -> Failover:
    """Steady load from an `enterprise` key (two threads, one input), a `public` one (two threads, batches of two)
    and a `bystander` (one thread) through `base_url`; once each is served, kill -9 of the cluster's master on port
    `victim`; returns after its replica is promoted, every client is exactly limited again (`limit` a minute, the
    quota script's, not a web process's fallback bucket) and the web workers had 2 s to drain their fallback records
    (a worker stopped with records in memory loses them, as the README says)."""
    load = Load()
    load.add("enterprise", lambda: predict_request(base_url, keys["enterprise"]), threads=2)
    load.add("public", lambda: predict_request(base_url, keys["public"], batch=2), threads=2)
    load.add("bystander", lambda: predict_request(base_url, keys["bystander"]), threads=1)
    with load:
        wait_until(
            lambda: all(sum(o.status == 200 for o in found) > 20 for found in load.outcomes.values()),
            timeout=30,
            what="every key served before the fault",
        )
        killing = time.monotonic()
        cluster.kill(victim)
        killed = time.monotonic()
        wait_until(lambda: victim not in cluster.master_ports(), timeout=20, what="the replica promoted")
        promoted = time.monotonic()

        def exact(outcome: Outcome) -> bool:
            return outcome.status == 200 and outcome.headers["X-RateLimit-Limit"] == str(limit)

        wait_until(
            lambda: all(any(exact(o) and o.started > promoted for o in found) for found in load.outcomes.values()),
            timeout=20,
            what="exact limiting again for every key",
        )
        back = time.monotonic()
        time.sleep(2)
    return Failover(load.outcomes, killing, killed, promoted, back)


def organizations_around_a_master(cluster, organization_on: Callable[[str], object]) -> tuple[int, dict[str, object]]:
    """An enterprise organization, the master serving its shard (the victim), a pro organization on the same master
    (`public`) and one on another (`bystander`): six pro organizations fill six shards, spread over every master."""
    from serving.predictions.querylog import stream_key

    enterprise = organization_on("enterprise")
    victim = cluster.master_of(stream_key(enterprise.pk))
    pros = [organization_on("pro") for _ in range(6)]
    public = next(o for o in pros if cluster.master_of(stream_key(o.pk)) == victim)
    bystander = next(o for o in pros if cluster.master_of(stream_key(o.pk)) != victim)
    return victim, {"enterprise": enterprise, "public": public, "bystander": bystander}


def assert_failover_kept_its_promises(failover: Failover, organizations: dict[str, object], *, limit: int) -> None:
    """The README's promise for a master killed under load (after the query log was flushed): enterprise never saw a
    5xx (the fallback served it while the shard had no master); the public key got 200 or 503 with Retry-After; the
    bystander, whose shard another master serves, was served throughout, exactly limited (the breakers are per
    master); and for each organization `assert_recorded_once_and_counted` holds."""
    seen = failover.outcomes
    print(
        f"\nmaster killed: replica promoted after {failover.promoted - failover.killed:.2f} s, exact limiting back "
        f"after {failover.back - failover.killed:.2f} s; "
        + "; ".join(f"{name} {dict(collections.Counter(o.status for o in found))}" for name, found in seen.items())
        + f"; slowest answer {max(o.elapsed for found in seen.values() for o in found):.3f} s"
    )
    assert not [o for o in seen["enterprise"] if o.status >= 500 or o.status == 0]
    assert {o.status for o in seen["public"]} <= {200, 503}
    assert all(int(o.headers["Retry-After"]) > 0 for o in seen["public"] if o.status == 503)
    assert {(o.status, o.headers["X-RateLimit-Limit"]) for o in seen["bystander"]} == {(200, str(limit))}
    for name, organization in organizations.items():
        answered, recorded, lost = assert_recorded_once_and_counted(
            organization,
            seen[name],
            batch=2 if name == "public" else 1,
            fault_started=failover.killing,
            fault_ended=failover.killed,
        )
        print(f"{name}: answered {answered}, recorded {recorded}, lost {lost}")
