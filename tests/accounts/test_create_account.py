"""`manage.py create_account`: operator onboarding that prints the first API key on the last line."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Organization, Role, User
from apikeys.cache import apikey_context as apikey_authenticate
from apikeys.errors import TermsNotAcceptedError
from apikeys.keys import hash_key
from apikeys.models import ApiKey
from legal.models import TermsAcceptance
from tests.factories import member

pytestmark = pytest.mark.django_db


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_account", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


def test_create_account_prints_a_working_key_of_an_enterprise_organization_on_the_last_line():
    out, err = _run("ent@example.com", "--tier", "enterprise", "--organization", "Acme", "--accept-terms")

    raw_key = _last_line(out)
    assert raw_key.startswith(settings.API_KEY_PREFIX)
    context = apikey_authenticate(raw_key=raw_key)
    organization = Organization.objects.get()
    assert (organization.name, organization.tier.code) == ("Acme", "enterprise")
    assert (context.organization_id, context.tier_code) == (organization.pk, "enterprise")
    assert err.strip() == f"Created ent@example.com in organization 'Acme' (#{organization.pk}) on tier enterprise."


def test_create_account_makes_a_verified_owner_who_accepted_the_terms():
    _run("ent@example.com", "--tier", "enterprise", "--organization", "Acme", "--accept-terms")

    user = User.objects.get()
    assert user.email == "ent@example.com"
    assert user.email_verified_at is not None
    assert user.has_usable_password() is False
    assert user.membership.role == Role.OWNER
    assert TermsAcceptance.objects.filter(user=user).count() == 1


def test_create_account_names_the_organization_after_the_email_when_not_given():
    _run("solo@example.com", "--tier", "pro")

    organization = Organization.objects.get()
    assert organization.name == "solo@example.com"
    assert organization.tier.code == "pro"


def test_create_account_without_accept_terms_makes_a_key_the_api_refuses_until_someone_accepts():
    out, err = _run("ent@example.com", "--tier", "enterprise")

    with pytest.raises(TermsNotAcceptedError):
        apikey_authenticate(raw_key=_last_line(out))
    assert "The Terms are not accepted yet" in err
    assert TermsAcceptance.objects.count() == 0


def test_create_account_stores_only_the_sha256_of_the_key():
    out, _ = _run("ent@example.com", "--tier", "enterprise", "--accept-terms")
    raw_key = _last_line(out)
    secret = raw_key.removeprefix(settings.API_KEY_PREFIX)

    row = ApiKey.objects.values().get()

    assert row["key_hash"] == hash_key(raw_key)
    assert row["display"] == f"{settings.API_KEY_PREFIX}…{raw_key[-4:]}"
    stored = " ".join(str(value) for value in row.values())
    assert raw_key not in stored
    assert secret[:-4] not in stored


def test_create_account_refuses_a_mailbox_that_already_has_an_account():
    member(email="johndoe@gmail.com")

    with pytest.raises(CommandError, match="An account already exists for this email address"):
        _run("John.Doe+ops@gmail.com", "--tier", "pro")

    assert User.objects.count() == 1
    assert ApiKey.objects.count() == 0


def test_create_account_refuses_a_disposable_address():
    with pytest.raises(CommandError, match="disposable"):
        _run("temp@mailinator.com", "--tier", "free")

    assert User.objects.count() == 0
    assert ApiKey.objects.count() == 0


def test_create_account_refuses_something_that_is_not_an_address():
    with pytest.raises(CommandError, match="Not a valid email address: not-an-address"):
        _run("not-an-address", "--tier", "free")

    assert User.objects.count() == 0


def test_create_account_refuses_an_unknown_tier():
    with pytest.raises(CommandError, match="invalid choice: 'platinum'"):
        _run("ent@example.com", "--tier", "platinum")

    assert User.objects.count() == 0


def test_create_account_refuses_an_organization_name_longer_than_the_portal_allows():
    with pytest.raises(CommandError):
        _run("ent@example.com", "--tier", "enterprise", "--organization", "A" * 101)

    assert User.objects.count() == 0
    assert ApiKey.objects.count() == 0
