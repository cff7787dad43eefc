"""Keeping API keys and forged lines out of the logs.

A key belongs in the Authorization header, which nothing logs. A client that pastes one into a URL gets 400 from the
API, but the web server's access log has already written the path by then, and a path may also carry CR/LF (sent
percent-encoded) that would forge a log line. Every log line the platform writes (Django's, gunicorn's, granian's)
goes through these formatters: anything shaped like a key, percent-encoded or not, becomes `<redacted>`.

Loaded by the web server's master process before Django is set up, so the prefix falls back to the environment
variable the settings read."""

import logging
import os
import re
from functools import lru_cache

REDACTED = "<redacted>"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _key_prefix() -> str:
    from django.conf import settings

    if settings.configured:
        return settings.API_KEY_PREFIX
    return os.environ.get("API_KEY_PREFIX", "moat_live_")


@lru_cache(maxsize=4)
def _key_pattern(prefix: str) -> re.Pattern[str]:
    # Each character of the prefix as itself or percent-encoded (moat%5Flive%5F...), then the rest of the token.
    spelled = "".join(
        re.escape(char) if char.isalnum() else f"(?:{re.escape(char)}|%{ord(char):02X}|%{ord(char):02x})"
        for char in prefix
    )
    return re.compile(spelled + r"[A-Za-z0-9_%-]*")


def redact_keys(text: str) -> str:
    """The text with every API key (or key-shaped token) replaced by `<redacted>`."""
    return _key_pattern(_key_prefix()).sub(REDACTED, text)


def escape_control_characters(text: str) -> str:
    """CR, LF and the other control characters as `\\xNN`, so one request is always one log line."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never contains an API key (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_keys(super().format(record))


class AccessLogFormatter(RedactingFormatter):
    """For access logs, whose lines quote what the client sent: also one line per request, whatever it sent."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_control_characters(super().format(record))
