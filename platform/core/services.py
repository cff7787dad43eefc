"""Writes of the dead-letter list: parking a task that was given up on, and running it again."""

import uuid

from django.db import transaction
from django.utils import timezone

from core.models import FailedTask


def failed_task_park(
    *, task_id: str, task_name: str, args: list, kwargs: dict, reason: str, attempts: int, error: str
) -> FailedTask:
    """Record a task message that was given up on, once per message (its task id): a second parking of the same
    message updates the row. Args and kwargs are the task's JSON arguments (ids, by house rule)."""
    row, _ = FailedTask.objects.update_or_create(
        task_id=task_id,
        defaults={
            "task_name": task_name,
            "args": list(args or []),
            "kwargs": dict(kwargs or {}),
            "reason": reason,
            "attempts": attempts,
            "error": error[:10_000],
            "parked_at": timezone.now(),
        },
    )
    return row


@transaction.atomic
def failed_task_run_again(*, failed_task_id: int, actor: str) -> str | None:
    """Enqueue a parked task again (a new message, same arguments) and mark the row resolved; returns the new task
    id, or None if the row is gone or already resolved (two staff clicking at once enqueue it once)."""
    from config.celery_app import app

    new_id = str(uuid.uuid4())
    claimed = FailedTask.objects.filter(pk=failed_task_id, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=actor[:255], rerun_task_id=new_id
    )
    if not claimed:
        return None
    row = FailedTask.objects.get(pk=failed_task_id)
    app.loader.import_default_modules()  # every app's tasks module: a web process has not imported them all
    task = app.tasks.get(row.task_name)

    def enqueue() -> None:
        if task is None:  # no longer a task of this code base: the broker may still know a worker that has it
            app.send_task(row.task_name, args=row.args, kwargs=row.kwargs, task_id=new_id)
        else:
            task.apply_async(args=row.args, kwargs=row.kwargs, task_id=new_id)

    transaction.on_commit(enqueue)
    return new_id


def failed_task_dismiss(*, failed_task_id: int, actor: str) -> bool:
    """Mark a parked task resolved without running it (staff handled it otherwise)."""
    return bool(
        FailedTask.objects.filter(pk=failed_task_id, resolved_at__isnull=True).update(
            resolved_at=timezone.now(), resolved_by=actor[:255]
        )
    )
