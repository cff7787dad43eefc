"""The attacker's HTTP side: the portal pages a person uses to get a key, the mailbox the verification link arrives
in, and the prediction API. Standard library only (urllib); nothing here touches the database or the settings, so
it acts exactly as an outside client would.

`X-Forwarded-For` is sent when the attacker poses behind a proxy the platform trusts (`TRUSTED_PROXIES`); a server
that trusts none ignores it and records the loopback address.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

import numpy as np

_CSRF_COOKIE = "csrftoken"
_API_KEY = re.compile(r'data-api-key="([^"]+)"')
_VERIFY_PATH = re.compile(r"/verify-email/[^/\s]+/")
# The file email backend writes the messages of one connection into one file, separated by a line of 79 dashes.
_MESSAGE_SEPARATOR = re.compile(r"^-{79}$", re.MULTILINE)


class ClientError(Exception):
    """The platform did not answer as a person's browser or an API client expects."""


@dataclass(frozen=True)
class Page:
    status: int
    url: str
    text: str


def _checked_base_url(url: str) -> str:
    """The base address without a trailing slash, refused unless http(s): urllib would also open file: URLs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"the platform's address must be http(s)://host[:port], got {url!r}")
    return url.rstrip("/")


class _Browser:
    """Cookies, one User-Agent and (optionally) an X-Forwarded-For on every request, redirects followed."""

    def __init__(self, base_url: str, *, user_agent: str, forwarded_for: str | None, timeout: float) -> None:
        self.base_url = _checked_base_url(base_url)
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.headers = {"User-Agent": user_agent}
        if forwarded_for:
            self.headers["X-Forwarded-For"] = forwarded_for
        self.timeout = timeout

    def request(self, path: str, *, data: dict[str, str] | None = None) -> Page:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, headers=self.headers)  # noqa: S310 - http(s)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return Page(response.status, response.url, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return Page(exc.code, exc.url, exc.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError) as exc:
            raise ClientError(f"cannot reach {self.base_url}{path}: {exc}") from exc

    def csrf_token(self) -> str:
        for cookie in self.cookies:
            if cookie.name == _CSRF_COOKIE:
                return cookie.value
        raise ClientError("the portal set no CSRF cookie")

    def post_form(self, path: str, data: dict[str, str]) -> Page:
        return self.request(path, data={**data, "csrfmiddlewaretoken": self.csrf_token()})


class Mailbox:
    """The attacker's inbox: the folder the platform's file email backend writes to (as a thief reads the mailbox
    of an address it controls)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def messages_to(self, address: str) -> list[str]:
        """Plain-text bodies of every message addressed to `address`, oldest file first."""
        bodies = []
        files = list(self.folder.glob("*.log")) if self.folder.is_dir() else []
        # By write time: the backend names files by the second and an object id, which does not order them.
        for path in sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name)):
            for chunk in _MESSAGE_SEPARATOR.split(path.read_text(encoding="utf-8", errors="replace")):
                if not chunk.strip():
                    continue
                message = email.message_from_string(chunk.strip("\n"), policy=email.policy.default)
                if address.lower() not in str(message.get("To", "")).lower():
                    continue
                part = message.get_body(preferencelist=("plain",)) or message
                bodies.append(part.get_content())
        return bodies

    def verification_path(self, address: str, *, timeout: float = 30.0) -> str:
        """The path of the latest verification link sent to `address`, waiting up to `timeout` seconds for it
        (the email is sent by a Celery task after the sign-up commits)."""
        deadline = time.monotonic() + timeout
        while True:
            for body in reversed(self.messages_to(address)):
                found = _VERIFY_PATH.search(body)
                if found:
                    return found.group(0)
            if time.monotonic() > deadline:
                raise ClientError(f"no verification email for {address} in {self.folder} after {timeout:.0f} s")
            time.sleep(0.2)


def portal_sign_up(
    base_url: str,
    *,
    email_address: str,
    password: str,
    organization: str,
    mailbox: Mailbox,
    user_agent: str,
    forwarded_for: str | None = None,
    key_name: str = "default",
    timeout: float = 30.0,
) -> str:
    """Sign up through the real pages, verify the address from the mailbox, accept the Terms if asked, create an API
    key and return it (read from the page, where it is shown once)."""
    browser = _Browser(base_url, user_agent=user_agent, forwarded_for=forwarded_for, timeout=timeout)
    browser.request("/signup/")
    page = browser.post_form(
        "/signup/",
        {"email": email_address, "password": password, "organization": organization, "accept_terms": "on"},
    )
    if page.status != 200 or "/signup/" in urllib.parse.urlsplit(page.url).path:
        raise ClientError(f"sign-up of {email_address} refused (HTTP {page.status})")
    # The link carries the platform's SITE_URL; the attacker follows its path on the server it talks to.
    page = browser.request(mailbox.verification_path(email_address, timeout=timeout))
    if page.status != 200:
        raise ClientError(f"verification of {email_address} failed (HTTP {page.status})")
    page = browser.request("/keys/")
    if "/terms/accept/" in urllib.parse.urlsplit(page.url).path:
        browser.post_form(urllib.parse.urlsplit(page.url).path, {"accept_terms": "on"})
    page = browser.post_form("/keys/", {"name": key_name})
    found = _API_KEY.search(page.text)
    if page.status != 201 or not found:
        raise ClientError(f"no API key for {email_address} (HTTP {page.status})")
    return found.group(1)


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def error_code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    def header_int(self, name: str) -> int | None:
        try:
            return int(self.headers[name.lower()])
        except (KeyError, ValueError):
            return None


class ApiClient:
    """One API key's calls. Answers come back whatever their status; only an unreachable server raises."""

    def __init__(
        self, base_url: str, api_key: str, *, user_agent: str, forwarded_for: str | None = None, timeout: float = 30
    ) -> None:
        self.base_url = _checked_base_url(base_url)
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        if forwarded_for:
            self.headers["X-Forwarded-For"] = forwarded_for
        self.timeout = timeout

    def _call(self, path: str, payload: dict | None = None) -> ApiAnswer:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=self.headers)  # noqa: S310 - http(s)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310 - http(s)
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, OSError) as exc:
            raise ClientError(f"cannot reach {self.base_url}{path}: {exc}") from exc
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        return ApiAnswer(status, body, {name.lower(): value for name, value in headers.items()})

    def usage(self) -> ApiAnswer:
        return self._call("/v1/usage")

    def predict(self, inputs: np.ndarray, *, model: str) -> ApiAnswer:
        """Whole numbers (pixel levels) are sent as integers, others (a tabular model's grid values) as the
        shortest decimals that read back as the same floats."""
        inputs = np.asarray(inputs)
        whole = inputs.dtype.kind != "f" or bool(np.all(inputs == np.rint(inputs)))
        rows = inputs.astype(np.int64).tolist() if whole else inputs.tolist()
        return self._call(f"/v1/models/{urllib.parse.quote(model, safe='')}/predict", {"inputs": rows})
