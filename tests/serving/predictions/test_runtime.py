"""The models a web process serves: every thread of a threaded server (gunicorn's gthread, granian's blocking
threads) finds them, the first load included, and one thread at a time reads the registry."""

import threading
import time

import pytest
from django.db import connection

from serving.predictions import runtime
from tiers.models import ModelVariant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("registered_digits")]
THREADS = 6


def _in_threads(call) -> list:
    """`call()` in THREADS threads started together; their results."""
    start = threading.Barrier(THREADS)
    results: list = [None] * THREADS

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = call()
        finally:
            connection.close()  # each thread's own PostgreSQL connection

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def fresh_registry(monkeypatch):
    """A process's registry before its first request, whose loads take long enough for every thread to arrive
    during the first one; counts the loads."""
    registry = runtime._Registry()
    monkeypatch.setattr(runtime, "_registry", registry)
    loads = []
    reload = registry._reload

    def slow_reload() -> None:
        loads.append(threading.get_ident())
        time.sleep(0.3)
        reload()

    monkeypatch.setattr(registry, "_reload", slow_reload)
    return loads


def test_threads_arriving_during_the_first_load_wait_for_it_and_get_the_model(fresh_registry):
    models = _in_threads(lambda: runtime.serving_model(slug="digits", variant=ModelVariant.FULL))

    assert all(model is not None and model.slug == "digits" for model in models)  # none answered "no such model"
    assert len({model.version for model in models}) == 1
    assert len(fresh_registry) == 1  # the others found it loaded


def test_while_one_thread_reloads_the_others_serve_the_models_already_loaded(fresh_registry):
    assert runtime.serving_model(slug="digits", variant=ModelVariant.FULL) is not None
    runtime.serving_models_reload()  # a new version was activated: the next request reloads

    models = _in_threads(lambda: runtime.serving_model(slug="digits", variant=ModelVariant.FULL))

    assert all(model is not None for model in models)
    assert len(fresh_registry) == 2  # the first load and one reload, not one per thread
