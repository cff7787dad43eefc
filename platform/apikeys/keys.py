"""The key format: a typed prefix and a high-entropy secret; only its SHA-256 is ever stored."""

import hashlib
import re
import secrets

from django.conf import settings

_SECRET_BYTES = 32  # 256 bits
_SECRET_PATTERN = r"[A-Za-z0-9_-]{43}"  # noqa: S105 - a regex, not a secret


def generate_raw_key() -> str:
    return settings.API_KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def display_fragment(raw_key: str) -> str:
    return f"{settings.API_KEY_PREFIX}…{raw_key[-4:]}"


def is_well_formed(raw_key: str) -> bool:
    """Cheap shape check, so garbage never reaches the database."""
    return re.fullmatch(re.escape(settings.API_KEY_PREFIX) + _SECRET_PATTERN, raw_key) is not None
