"""Settings for the test suite: the real settings, with real PostgreSQL and Redis.

When `DATABASE_URL` / `REDIS_URL` are unset, the embedded servers start (see `embedded`). Redis tests use their own
logical database (`TEST_REDIS_DB`, default 15) because the suite flushes it between tests. A Redis Cluster
(`redis+cluster://...`) has database 0 only, and the suite flushes every master of it: give the tests a cluster of
their own.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from embedded import ensure_services

_ROOT = Path(__file__).resolve().parents[2]
os.environ.update(ensure_services(Path(os.environ.get("MOAT_STATE_DIR", _ROOT / ".moat"))))
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret-" + "x" * 40)
os.environ.setdefault("WATERMARK_SECRET", "tests-only-watermark-secret")
os.environ.setdefault("OUTPUT_NOISE_SECRET", "tests-only-noise-secret")
os.environ.setdefault(
    "MODEL_ARTIFACT_DIR", str(Path(os.environ.get("MOAT_STATE_DIR", _ROOT / ".moat")) / "test-models")
)


def _redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme.endswith("+cluster"):  # a cluster has database 0 only: it must be the tests' own
        return url
    if parts.scheme == "unix":  # the database is a query parameter; urlunsplit would drop the empty host
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


os.environ["REDIS_URL"] = _redis_url_with_db(os.environ["REDIS_URL"], int(os.environ.get("TEST_REDIS_DB", "15")))
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
os.environ.setdefault("STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage")

from config.settings import *  # noqa: E402, F403

# Fast hashing in tests only: the suite creates many users and the hash strength is not under test.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Static files come from the source folders (no collectstatic before tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
