"""Writes of accounts: sign-up, email verification, operator-created accounts."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.errors import SignupError, VerificationTokenError
from accounts.models import Membership, Organization, Role, SignupRecord, User
from accounts.services import (
    account_create,
    email_check_allowed,
    email_verification_send,
    email_verification_token,
    email_verify,
    user_signup,
)
from apikeys.keys import hash_key
from apikeys.models import ApiKey
from legal.models import TermsAcceptance
from legal.selectors import terms_current
from tests.accounts.helpers import SIGNUP_PASSWORD, backdated_token, verification_url_in
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db


def _signup(**overrides) -> User:
    fields = {
        "email": "grace@example.com",
        "password": SIGNUP_PASSWORD,
        "organization_name": "  Compilers Inc  ",
        "ip_address": "198.51.100.7",
        "user_agent": "curl/8.0",
    }
    return user_signup(**(fields | overrides))


# --- email_check_allowed ---------------------------------------------------------------------------------------


def test_email_check_allowed_accepts_a_new_permanent_address():
    assert email_check_allowed(email="new.person@example.com") is None


def test_email_check_allowed_refuses_a_disposable_domain_on_the_email_field():
    with pytest.raises(SignupError) as caught:
        email_check_allowed(email="throwaway@mailinator.com")

    assert caught.value.field == "email"
    assert caught.value.message == (
        "Addresses from disposable email providers can't be used. Please use a permanent address."
    )


def test_email_check_allowed_refuses_a_mailbox_that_already_has_an_account_in_any_spelling():
    UserFactory(email="johndoe@gmail.com")

    with pytest.raises(SignupError) as caught:
        email_check_allowed(email="John.Doe+again@googlemail.com")

    assert caught.value.field == "email"
    assert caught.value.message == "An account already exists for this email address. Sign in instead."


def test_email_check_allowed_raises_value_error_for_a_non_address():
    with pytest.raises(ValueError):
        email_check_allowed(email="not-an-address")


# --- user_signup -----------------------------------------------------------------------------------------------


def test_user_signup_creates_the_owner_of_a_new_free_organization(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user = _signup()

    user.refresh_from_db()
    assert user.email == "grace@example.com"
    assert user.check_password(SIGNUP_PASSWORD)
    assert user.email_verified_at is None
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.organization.name == "Compilers Inc"
    assert membership.organization.tier.code == "free"


def test_user_signup_records_ip_user_agent_time_and_the_mailbox(django_capture_on_commit_callbacks):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        user = _signup(email="Grace.Hopper+moat@Gmail.com")

    record = SignupRecord.objects.get(user=user)
    assert record.organization == user.membership.organization
    assert record.ip_address == "198.51.100.7"
    assert record.user_agent == "curl/8.0"
    assert record.email == "Grace.Hopper+moat@gmail.com"
    assert record.email_canonical == "gracehopper@gmail.com"
    assert record.email_domain == "gmail.com"
    assert before <= record.created_at <= timezone.now()


def test_user_signup_records_acceptance_of_the_current_terms(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user = _signup()

    acceptance = TermsAcceptance.objects.get(user=user)
    assert acceptance.terms == terms_current()
    assert acceptance.ip_address == "198.51.100.7"
    assert acceptance.user_agent == "curl/8.0"


def test_user_signup_emails_the_verification_link_only_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _signup()
        assert mail.outbox == []

    assert len(callbacks) == 1
    callbacks[0]()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["grace@example.com"]


def test_user_signup_creates_no_api_key(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _signup()

    assert ApiKey.objects.count() == 0


def test_user_signup_refuses_a_taken_mailbox_and_creates_nothing():
    UserFactory(email="grace@example.com")
    counts = (User.objects.count(), Organization.objects.count(), SignupRecord.objects.count())

    with pytest.raises(SignupError):
        _signup(email="GRACE@example.com")

    assert (User.objects.count(), Organization.objects.count(), SignupRecord.objects.count()) == counts


# --- verification tokens ---------------------------------------------------------------------------------------


def test_email_verify_marks_the_address_verified():
    user = UserFactory(email_verified_at=None)

    verified = email_verify(token=email_verification_token(user=user))

    user.refresh_from_db()
    assert verified == user
    assert user.email_verified_at is not None


def test_email_verify_twice_keeps_the_first_verification_time():
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user=user)
    email_verify(token=token)
    first = User.objects.get(pk=user.pk).email_verified_at

    email_verify(token=token)

    assert User.objects.get(pk=user.pk).email_verified_at == first


def test_email_verify_refuses_a_tampered_token():
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user=user)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")

    with pytest.raises(VerificationTokenError) as caught:
        email_verify(token=tampered)

    assert caught.value.message == "This verification link is not valid."
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_email_verify_refuses_a_token_older_than_the_maximum_age(monkeypatch, settings):
    settings.EMAIL_VERIFICATION_MAX_AGE = timedelta(days=3)
    user = UserFactory(email_verified_at=None)
    token = backdated_token(monkeypatch, lambda: email_verification_token(user=user), seconds_ago=3 * 24 * 3600 + 60)

    with pytest.raises(VerificationTokenError) as caught:
        email_verify(token=token)

    assert caught.value.message == "This verification link has expired. Sign in to get a new one."
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_email_verify_accepts_a_token_within_the_maximum_age(monkeypatch, settings):
    settings.EMAIL_VERIFICATION_MAX_AGE = timedelta(days=3)
    user = UserFactory(email_verified_at=None)
    token = backdated_token(monkeypatch, lambda: email_verification_token(user=user), seconds_ago=3 * 24 * 3600 - 60)

    email_verify(token=token)

    assert User.objects.get(pk=user.pk).email_verified_at is not None


def test_email_verify_refuses_a_token_issued_for_the_previous_address():
    user = UserFactory(email="old@example.com", email_verified_at=None)
    token = email_verification_token(user=user)
    user.email = "new@example.com"
    user.save()

    with pytest.raises(VerificationTokenError) as caught:
        email_verify(token=token)

    assert caught.value.message == "This verification link is not valid."
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_email_verify_refuses_a_token_of_a_deleted_user():
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user=user)
    user.delete()

    with pytest.raises(VerificationTokenError):
        email_verify(token=token)


# --- email_verification_send -----------------------------------------------------------------------------------


def test_email_verification_send_emails_a_link_built_from_site_url(settings):
    settings.SITE_URL = "https://portal.moat.example"
    user = UserFactory(email="unverified@example.com", email_verified_at=None)

    assert email_verification_send(user_id=user.pk) is True

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["unverified@example.com"]
    assert message.subject == "Verify your email address for Moat"
    url = verification_url_in(message.body)
    token = url.removeprefix("https://portal.moat.example/verify-email/").rstrip("/")
    assert email_verify(token=token) == user


def test_email_verification_send_does_nothing_for_a_verified_user():
    user = UserFactory()

    assert email_verification_send(user_id=user.pk) is False
    assert mail.outbox == []


def test_email_verification_send_does_nothing_for_an_inactive_user():
    user = UserFactory(email_verified_at=None, is_active=False)

    assert email_verification_send(user_id=user.pk) is False
    assert mail.outbox == []


def test_email_verification_send_does_nothing_for_a_missing_user():
    assert email_verification_send(user_id=987654) is False
    assert mail.outbox == []


# --- account_create --------------------------------------------------------------------------------------------


def test_account_create_makes_a_verified_passwordless_owner_on_the_tier_with_a_key():
    created = account_create(email="ops@corp.example", tier_code="pro", organization_name="Corp", accept_terms=False)

    user = User.objects.get(pk=created.user.pk)
    assert user.email_verified_at is not None
    assert user.has_usable_password() is False
    assert created.organization.name == "Corp"
    assert created.organization.tier.code == "pro"
    assert user.membership.role == Role.OWNER
    key = ApiKey.objects.get(organization=created.organization)
    assert key.key_hash == hash_key(created.raw_key)
    assert key.created_by is None


def test_account_create_names_the_organization_after_the_email_by_default():
    created = account_create(email="solo@corp.example", tier_code="free", organization_name=None, accept_terms=False)

    assert created.organization.name == "solo@corp.example"


def test_account_create_records_terms_acceptance_only_when_asked():
    without = account_create(email="a@corp.example", tier_code="free", organization_name=None, accept_terms=False)
    with_terms = account_create(email="b@corp.example", tier_code="free", organization_name=None, accept_terms=True)

    assert TermsAcceptance.objects.filter(user=without.user).count() == 0
    acceptance = TermsAcceptance.objects.get(user=with_terms.user)
    assert acceptance.terms == terms_current()
    assert acceptance.ip_address is None
    assert acceptance.user_agent == "create_account command"


def test_account_create_refuses_a_mailbox_that_has_an_account():
    member(email="taken@corp.example")

    with pytest.raises(SignupError):
        account_create(email="Taken@Corp.example", tier_code="free", organization_name=None, accept_terms=True)

    assert Organization.objects.count() == 1
