"""Helpers of the accounts tests."""

import re

from django.conf import settings
from django.core import signing
from django.test import Client

from accounts.models import Invitation, Organization, Role, User
from accounts.services import invitation_create

SIGNUP_PASSWORD = "violet-harbour-lantern-42"

# Addresses Django's EmailField accepts (at most 254 characters, labels within 63) whose canonical form is too long
# once the domain is IDNA-encoded: a label of 10 such characters is 37 as punycode.
_IDN_LABEL = "中ü日ж本ñ語é한ß"
# 227 characters; the domain is 763 once encoded (over 253).
IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN = "ada@" + ".".join([_IDN_LABEL] * 20) + ".com"
# 130 characters; the domain is 231 once encoded (within 253), the canonical address 292 (over 254).
IDN_ADDRESS_WITH_AN_OVERLONG_CANONICAL_FORM = "a" * 60 + "@" + ".".join([_IDN_LABEL] * 6) + ".com"
OVERLONG_IDN_ADDRESSES = [IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN, IDN_ADDRESS_WITH_AN_OVERLONG_CANONICAL_FORM]


def verification_url_in(body: str) -> str:
    """The one verification link of an email body (absolute, built from SITE_URL)."""
    urls = re.findall(re.escape(settings.SITE_URL) + r"/verify-email/[^/\s]+/", body)
    assert len(urls) == 1, body
    return urls[0]


def backdated_token(monkeypatch, make_token, *, seconds_ago: int) -> str:
    """A token signed as if `seconds_ago` seconds had passed since it was issued."""
    original = signing.TimestampSigner.timestamp

    def earlier(self):
        return signing.b62_encode(signing.b62_decode(original(self)) - seconds_ago)

    with monkeypatch.context() as patch:
        patch.setattr(signing.TimestampSigner, "timestamp", earlier)
        return make_token()


def signed_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="accounts.backends.EmailBackend")
    return client


def invitation_url_in(body: str) -> str:
    """The one invitation link of an email body (absolute, built from SITE_URL)."""
    urls = re.findall(re.escape(settings.SITE_URL) + r"/invitations/[^/\s]+/", body)
    assert len(urls) == 1, body
    return urls[0]


def invite(
    organization: Organization, *, email: str = "new.member@example.com", invited_by: User | None = None
) -> tuple[Invitation, str]:
    """An invitation made through the service, with its raw token, as the invitee would get it by email.
    `invited_by` defaults to the organization's first owner."""
    if invited_by is None:
        invited_by = organization.memberships.filter(role=Role.OWNER).earliest("id").user
    return invitation_create(organization=organization, email=email, invited_by=invited_by)
