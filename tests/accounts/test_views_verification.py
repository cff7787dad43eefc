"""Email verification pages."""

import pytest
from django.core import mail

from accounts.models import User
from accounts.services import email_verification_token
from tests.accounts.helpers import (
    backdated_token,
    signed_in_client,
    verification_url_in,
)
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db


def test_verify_email_marks_the_address_verified_for_an_anonymous_visitor(client):
    user = UserFactory(email="unverified@example.com", email_verified_at=None)

    response = client.get(f"/verify-email/{email_verification_token(user=user)}/")

    assert response.status_code == 200
    assert response.context["verified_user"] == user
    assert "unverified@example.com" in response.content.decode()
    assert User.objects.get(pk=user.pk).email_verified_at is not None


def test_verify_email_sends_the_signed_in_owner_to_their_api_keys():
    user = member(email_verified_at=None)
    client = signed_in_client(user)

    response = client.get(f"/verify-email/{email_verification_token(user=user)}/")

    assert response.status_code == 302
    assert response.url == "/keys/"
    assert User.objects.get(pk=user.pk).email_verified_at is not None


def test_verify_email_with_a_tampered_token_answers_400_and_changes_nothing(client):
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user=user)
    tampered = token[:-2] + ("xx" if not token.endswith("xx") else "yy")

    response = client.get(f"/verify-email/{tampered}/")

    assert response.status_code == 400
    assert "This verification link is not valid." in response.content.decode()
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_verify_email_with_garbage_answers_400(client):
    response = client.get("/verify-email/not-a-token/")

    assert response.status_code == 400
    assert "This verification link is not valid." in response.content.decode()


def test_verify_email_with_an_expired_token_answers_400_and_says_so(client, monkeypatch, settings):
    user = UserFactory(email_verified_at=None)
    max_age = int(settings.EMAIL_VERIFICATION_MAX_AGE.total_seconds())
    token = backdated_token(monkeypatch, lambda: email_verification_token(user=user), seconds_ago=max_age + 1)

    response = client.get(f"/verify-email/{token}/")

    assert response.status_code == 400
    assert "This verification link has expired. Sign in to get a new one." in response.content.decode()
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_verify_email_refuses_a_token_for_an_address_the_user_no_longer_has(client):
    user = UserFactory(email="first@example.com", email_verified_at=None)
    token = email_verification_token(user=user)
    user.email = "second@example.com"
    user.save()

    response = client.get(f"/verify-email/{token}/")

    assert response.status_code == 400
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_verifying_twice_is_harmless(client):
    user = UserFactory(email_verified_at=None)
    url = f"/verify-email/{email_verification_token(user=user)}/"
    client.get(url)
    first = User.objects.get(pk=user.pk).email_verified_at

    response = client.get(url)

    assert response.status_code == 200
    assert User.objects.get(pk=user.pk).email_verified_at == first


def test_resend_verification_sends_a_new_link_to_an_unverified_user():
    user = member(email="late@example.com", email_verified_at=None)
    client = signed_in_client(user)

    response = client.post("/verify-email/resend/")

    assert response.status_code == 302
    assert response.url == "/account/"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["late@example.com"]
    verification_url_in(mail.outbox[0].body)


def test_resend_verification_sends_nothing_to_a_verified_user():
    client = signed_in_client(member())

    response = client.post("/verify-email/resend/")

    assert response.status_code == 302
    assert mail.outbox == []


def test_resend_verification_requires_sign_in(client):
    response = client.post("/verify-email/resend/")

    assert response.status_code == 302
    assert response.url.startswith("/login/?next=")
    assert mail.outbox == []


def test_resend_verification_refuses_get():
    client = signed_in_client(member(email_verified_at=None))

    response = client.get("/verify-email/resend/")

    assert response.status_code == 405
    assert mail.outbox == []
