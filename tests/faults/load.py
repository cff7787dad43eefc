"""Steady load on a real web server from a few client threads, every outcome recorded with its timing, so a fault
test can say what each client saw before, during and after the fault."""

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
