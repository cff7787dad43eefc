"""A real worker starts with this layout (Celery imports the stdlib `platform`) and runs tasks from the broker."""

import time

import pytest

from config.celery_app import app
from tests.factories import UserFactory
from tests.processes import celery_worker


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
@pytest.mark.django_db(transaction=True)
def test_a_worker_starts_and_sends_the_verification_email_from_the_broker(tmp_path):
    user = UserFactory(email="new@example.com", email_verified_at=None)
    outbox = tmp_path / "mail"
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "SITE_URL": "http://moat.test",
    }

    with celery_worker(extra_env=env, log_path=tmp_path / "worker.log"):
        app.send_task("accounts.send_verification_email", args=[user.pk])
        deadline = time.monotonic() + 30
        while not (outbox.exists() and any(outbox.iterdir())):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)

    (message,) = [path.read_text() for path in outbox.iterdir()]
    assert "To: new@example.com" in message
    assert "http://moat.test/verify-email/" in message
    assert "Task accounts.send_verification_email" in (tmp_path / "worker.log").read_text()
