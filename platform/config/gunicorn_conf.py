"""gunicorn settings for `make run` (Procfile: `gunicorn -c python:config.gunicorn_conf`)."""

import os

import gunicorn.http.wsgi

# gunicorn names itself in a `Server` header on every response; the platform names no software it runs on.
gunicorn.http.wsgi.SERVER = "moat"

bind = f"127.0.0.1:{os.environ.get('MOAT_PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
wsgi_app = "config.wsgi:application"
accesslog = "-"
# The path only (%(U)s), never the query string: a key pasted into a URL must not reach the logs.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
