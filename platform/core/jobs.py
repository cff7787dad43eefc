"""The base class of every Celery task (config/celery_app.py): redeliveries are bounded and give-ups are visible.

- A task that kills its worker (out of memory, a crash in native code, kill -9) is redelivered by acks_late with
  reject_on_worker_lost, and would be for ever. Each delivery is counted in Redis under the message's task id; a
  message whose worker died TASK_MAX_WORKER_LOSSES times is not run again but parked (core.FailedTask, in the admin).
- A task that fails after its last retry (or with no retry) is parked there too, with its error.
The count is bookkeeping, never a gate on Redis: if Redis cannot be reached the task simply runs.
"""

import contextlib
import logging

import redis
from celery import Task
from django.conf import settings

from monitoring.metrics import celery_task_finished

logger = logging.getLogger(__name__)

_DELIVERIES_TTL_SECONDS = 7 * 86400  # longer than any redelivery: the broker's visibility timeout is an hour


def _deliveries_key(task_id: str) -> str:
    return f"moat:task:deliveries:{task_id}"


class MoatTask(Task):
    def __call__(self, *args, **kwargs):
        task_id = self.request.id
        if task_id and not self.request.is_eager:
            lost = self._count_delivery(task_id) - 1  # the deliveries before this one that never returned
            if lost >= settings.TASK_MAX_WORKER_LOSSES:
                self._park(
                    reason="worker_lost",
                    attempts=lost,
                    error=f"The worker running this task died on each of its {lost} deliveries (killed, out of "
                    "memory or crashed); it was not run again.",
                    args=args,
                    kwargs=kwargs,
                )
                self._forget_deliveries(task_id)
                return None
        return super().__call__(*args, **kwargs)

    def after_return(self, status, retval, task_id, args, kwargs, einfo) -> None:
        # The run returned (whatever its outcome): it was not lost with its worker.
        if task_id and not self.request.is_eager:
            self._forget_deliveries(task_id)
        celery_task_finished(task=self.name, outcome=str(status))
        super().after_return(status, retval, task_id, args, kwargs, einfo)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """The final failure (after the task's retries, if it retries): park it for staff."""
        self._park(
            reason="failed",
            attempts=self.request.retries + 1,
            error=f"{exc.__class__.__name__}: {exc}\n\n{einfo.traceback if einfo else ''}",
            args=args,
            kwargs=kwargs,
        )
        super().on_failure(exc, task_id, args, kwargs, einfo)

    # --- helpers ------------------------------------------------------------------------------------------
    def _count_delivery(self, task_id: str) -> int:
        from core.redis import redis_client

        try:
            pipe = redis_client().pipeline(transaction=True)  # one key: a transaction on a cluster too
            pipe.incr(_deliveries_key(task_id))
            pipe.expire(_deliveries_key(task_id), _DELIVERIES_TTL_SECONDS)
            return int(pipe.execute()[0])
        except redis.RedisError:
            return 1

    def _forget_deliveries(self, task_id: str) -> None:
        from core.redis import redis_client

        with contextlib.suppress(redis.RedisError):  # else it expires
            redis_client().delete(_deliveries_key(task_id))

    def _park(self, *, reason: str, attempts: int, error: str, args, kwargs) -> None:
        from core.services import failed_task_park

        logger.error("task %s[%s] given up on (%s) after %d attempts", self.name, self.request.id, reason, attempts)
        try:
            failed_task_park(
                task_id=self.request.id or "",
                task_name=self.name,
                args=list(args or []),
                kwargs=dict(kwargs or {}),
                reason=reason,
                attempts=attempts,
                error=error,
            )
        except Exception:
            # PostgreSQL is away (the failure may be that very outage): the log line above is what remains.
            logger.exception("could not park task %s[%s]", self.name, self.request.id)
