"""gunicorn settings for `make run` (Procfile: `gunicorn -c python:config.gunicorn_conf`)."""

import os

import gunicorn.glogging
import gunicorn.http.wsgi

from core.redaction import AccessLogFormatter, RedactingFormatter

# gunicorn names itself in a `Server` header on every response; the platform names no software it runs on.
gunicorn.http.wsgi.SERVER = "moat"

bind = f"127.0.0.1:{os.environ.get('MOAT_PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
wsgi_app = "config.wsgi:application"
accesslog = "-"
# The path only (%(U)s), never the query string: a key pasted into a URL must not reach the logs. The worker's pid
# last (%(p)s): which process answered, for an operator chasing one worker's misbehaviour.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms %(p)s'


class _RedactingLogger(gunicorn.glogging.Logger):
    """gunicorn's logger, its lines passed through core.redaction: no API key and no forged line in either log."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log, formatter_class in ((self.error_log, RedactingFormatter), (self.access_log, AccessLogFormatter)):
            for handler in log.handlers:
                if handler.formatter is not None:
                    handler.setFormatter(formatter_class(handler.formatter._fmt, handler.formatter.datefmt))


logger_class = _RedactingLogger


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges leave the metrics (prometheus_client's multiprocess mode, bin/web)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
