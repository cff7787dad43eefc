"""gunicorn settings for `make run` (Procfile: `gunicorn -c python:config.gunicorn_conf`)."""

import os
import re

import gunicorn.glogging
import gunicorn.http.wsgi

from core.redaction import AccessLogFormatter, RedactingFormatter

# gunicorn names itself in a `Server` header on every response; the platform names no software it runs on.
gunicorn.http.wsgi.SERVER = "moat"

# Loopback unless told otherwise: a web host behind a load balancer listens on its private address (MOAT_HOST).
bind = f"{os.environ.get('MOAT_HOST', '127.0.0.1')}:{os.environ.get('MOAT_PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
wsgi_app = "config.wsgi:application"
accesslog = "-"
# The path only (%(U)s), never the query string: a key pasted into a URL must not reach the logs. The worker's pid
# last (%(p)s): which process answered, for an operator chasing one worker's misbehaviour.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms %(p)s'


# The atoms computed for every access line when the format uses no others (see _RedactingLogger.atoms).
_LEAN_ATOMS = frozenset({"h", "m", "U", "s", "b", "M", "p"})


class _RedactingLogger(gunicorn.glogging.Logger):
    """gunicorn's logger, its lines passed through core.redaction: no API key and no forged line in either log."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        # gunicorn computes every atom for every line (the date, each request and response header, the whole WSGI
        # environ) although the format reads seven: a line cost 20 us, 12 with only those (a single prediction's
        # worker time is about 450 us).
        self._format_is_lean = set(re.findall(r"%\(([^)]+)\)", cfg.access_log_format)) <= _LEAN_ATOMS
        for log, formatter_class in ((self.error_log, RedactingFormatter), (self.access_log, AccessLogFormatter)):
            for handler in log.handlers:
                if handler.formatter is not None:
                    handler.setFormatter(formatter_class(handler.formatter._fmt, handler.formatter.datefmt))

    def atoms(self, resp, req, environ: dict, request_time) -> dict:
        """The atoms of an access line: those of `_LEAN_ATOMS` alone when the format reads no others (the same
        values gunicorn gives them), else all of gunicorn's."""
        if not getattr(self, "_format_is_lean", False):
            return super().atoms(resp, req, environ, request_time)
        status = resp.status
        sent = getattr(resp, "sent", None)
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "s": status.split(None, 1)[0] if isinstance(status, str) else status,
            "b": str(sent) if sent is not None else "-",
            "M": request_time.seconds * 1000 + request_time.microseconds // 1000,
            "p": f"<{os.getpid()}>",
        }


logger_class = _RedactingLogger


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges leave the metrics (prometheus_client's multiprocess mode, bin/web)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
