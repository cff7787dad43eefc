"""Shared by the abuse tests that run the real platform: the web server and a Celery worker, and waiting on them."""

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.processes import celery_worker, web_server


@contextlib.contextmanager
def platform_with_jobs(tmp_path: Path) -> Iterator[str]:
    """A real web server and a real Celery worker (emails into files under `tmp_path/mail`); yields the base URL."""
    with (
        web_server(log_path=tmp_path / "web.log") as (base_url, _),
        celery_worker(
            log_path=tmp_path / "worker.log",
            extra_env={
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(tmp_path / "mail"),
            },
        ),
    ):
        yield base_url


def wait_for(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def query_log_flushed() -> bool:
    from serving.predictions.querylog import querylog_pending

    return querylog_pending() == 0
