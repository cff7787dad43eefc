"""Helpers shared by the accounts page tests."""

from django.test import Client

from accounts.models import Membership, Organization, SignupRecord, User
from legal.models import TermsAcceptance
from tests.factories import DEFAULT_PASSWORD

INVALID_LOGIN = "That email and password don't match an account."


def record_counts() -> tuple[int, ...]:
    return (
        User.objects.count(),
        Organization.objects.count(),
        Membership.objects.count(),
        SignupRecord.objects.count(),
        TermsAcceptance.objects.count(),
    )


def session_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def login(client: Client, email: str, password: str = DEFAULT_PASSWORD, **extra):
    return client.post("/login/", {"email": email, "password": password}, **extra)
