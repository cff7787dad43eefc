"""WSGI entry point for gunicorn and granian.

Two handlers share the URLconf and the views: /v1/ and /v2 (the prediction APIs, the hot path) run through
`settings.API_MIDDLEWARE` only, everything else (the portal, the console, the admin) through the full
`settings.MIDDLEWARE`. An API call carries a bearer key, never a cookie: the session, CSRF, user, messages, Terms and
lockout middleware had nothing to do for it but cost about a seventh of a single prediction's time.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# The prediction APIs (/v1/, the Open Inference Protocol's /v2): bearer keys, no cookies.
API_PREFIXES = ("/v1/", "/v2/")
API_PATHS = frozenset({"/v2"})


class ApiHandler(WSGIHandler):
    """A WSGI handler whose middleware is `settings.API_MIDDLEWARE`."""

    def load_middleware(self, is_async: bool = False) -> None:
        from django.conf import settings

        # BaseHandler reads settings.MIDDLEWARE; lend it the API's list while it builds the chain (at start-up,
        # before any request).
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


site = get_wsgi_application()
api = ApiHandler()


def application(environ: dict, start_response):
    path = environ.get("PATH_INFO", "")
    handler = api if path.startswith(API_PREFIXES) or path in API_PATHS else site
    return handler(environ, start_response)
