"""Concurrency in tests: calls made at the same instant from many threads, and proof that one writer waits for
another (the first holds its transaction open until the second has had time to run; the second must still be blocked
then)."""

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection, transaction

T = TypeVar("T")


def simultaneously(call: Callable[[], T], count: int) -> list[T]:
    """`count` threads each make `call` once, released together by a barrier; their results in completion order."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        result = call()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def second_waits_for_first(first: Callable[[], object], second: Callable[[], object]) -> tuple[bool, list[Exception]]:
    """Run `first` in a transaction held open in one thread, then `second` in another; returns whether `second`
    was still blocked half a second later, and the errors either raised (in order)."""
    first_done, release_first = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def run_first() -> None:
        try:
            with transaction.atomic():
                first()
                first_done.set()
                release_first.wait(10)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    def run_second() -> None:
        try:
            second()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    a = threading.Thread(target=run_first)
    a.start()
    if not first_done.wait(10):
        raise AssertionError(f"the first writer did not finish: {errors}")
    b = threading.Thread(target=run_second)
    b.start()
    b.join(0.5)
    blocked = b.is_alive()
    release_first.set()
    a.join(10)
    b.join(10)
    return blocked, errors
