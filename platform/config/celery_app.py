"""The Celery application shared by the worker, beat and the web processes that enqueue tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Every task's base: bounded redeliveries after a lost worker, and tasks given up on parked in the admin.
app = Celery("moat", task_cls="core.jobs:MoatTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
