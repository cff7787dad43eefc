"""Shared by the live red-team tests: the platform they attack, as `make redteam` starts it."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.processes import celery_worker, web_server


@contextlib.contextmanager
def attacked_platform(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real web server and a real Celery worker trusting the loopback proxy (attackers choose their addresses with
    X-Forwarded-For), emails into files; yields the base URL and the mail folder."""
    mail = tmp_path / "mail"
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail),
        "TRUSTED_PROXIES": "127.0.0.1",
    }
    with (
        web_server(log_path=tmp_path / "web.log", extra_env=env) as (base_url, _),
        celery_worker(log_path=tmp_path / "worker.log", extra_env=env),
    ):
        yield base_url, mail
