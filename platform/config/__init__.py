"""Project configuration: settings, URLs, WSGI and the Celery application."""

import os

# Before anything imports onnxruntime: from 1.29 on it starts a telemetry thread at import, and a process forked
# after that (gunicorn's workers, Celery's pool) hangs at exit or aborts when it builds a session.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from config.celery_app import app as celery_app

__all__ = ["celery_app"]
