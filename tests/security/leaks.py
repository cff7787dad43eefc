"""What every response must and must not carry, shared by the security tests (the authorization matrix applies it to
every answer of every route, method and role).

Must: the security headers (a CSP whose scripts come from our origin only, nosniff, no framing, a Referrer-Policy).
Must not: the name or version of the software underneath, a filesystem path, or a traceback. ("Python" alone is
allowed: the API docs show a Python client.)"""

import platform
import re
import sys

import django
from django.conf import settings

SOFTWARE = (
    "Django",
    "django",
    "DRF",
    "rest_framework",
    "djangorestframework",
    "gunicorn",
    "granian",
    "Werkzeug",
    "werkzeug",
    "uwsgi",
    "whitenoise",
    "psycopg",
)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


def _paths() -> tuple[str, ...]:
    return (str(settings.BASE_DIR), sys.prefix, "site-packages", "/usr/lib/python", "/usr/local/lib/python")


def _versions() -> tuple[str, ...]:
    return (django.get_version(), f"Python/{platform.python_version()}", f"CPython {platform.python_version()}")


def assert_names_no_software(response, *, admin_page: bool = False) -> None:
    """No framework or server name or version, path or traceback, in the body or the headers.

    `admin_page`: a page of the Django admin that staff were let into. Its markup and scripts are Django's own
    (`django-admin-form-add-constants`, the `django.gettext` catalog), which staff may see; a version, a path or a
    traceback they may not, and an admin error page names nothing either."""
    text = response.content.decode(errors="replace") + "\n" + "\n".join(f"{k}: {v}" for k, v in response.items())
    for word in SOFTWARE:
        # As a word: random tokens in cookies (`...xDRFq...`) are not a name.
        if not (admin_page and word == "django") and re.search(rf"(?<![A-Za-z0-9]){word}(?![A-Za-z0-9])", text):
            raise AssertionError(f"{response.status_code} names {word!r}")
    for word in (*_versions(), *_paths()):
        assert word not in text, f"{response.status_code} names {word!r}"
    assert not TRACEBACK.search(text), f"{response.status_code} carries a traceback"
    assert response.headers.get("Server", "moat") == "moat"
    assert "X-Powered-By" not in response.headers


def _directive(policy: str, name: str) -> str | None:
    for directive in policy.split(";"):
        parts = directive.split()
        if parts and parts[0] == name:
            return " ".join(parts[1:])
    return None


def assert_security_headers(response) -> None:
    """The headers every response carries: a CSP without inline or eval'd scripts, nosniff, DENY, a Referrer-Policy."""
    policy = response.headers.get("Content-Security-Policy", "")
    scripts = _directive(policy, "script-src") or _directive(policy, "default-src")
    assert scripts is not None, f"{response.status_code} without a script policy: {policy!r}"
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts and "*" not in scripts.split()
    assert _directive(policy, "frame-ancestors") == "'none'"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("Referrer-Policy") in {"same-origin", "strict-origin-when-cross-origin", "no-referrer"}
