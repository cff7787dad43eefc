"""Celery tasks of accounts."""

import pytest
from django.core import mail

from accounts.tasks import send_verification_email
from tests.accounts.helpers import verification_url_in
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_send_verification_email_sends_the_link_to_an_unverified_user():
    user = UserFactory(email="new@example.com", email_verified_at=None)

    result = send_verification_email.delay(user.pk)

    assert result.get() is True
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    verification_url_in(mail.outbox[0].body)


def test_send_verification_email_returns_false_for_a_verified_user():
    user = UserFactory()

    assert send_verification_email.delay(user.pk).get() is False
    assert mail.outbox == []


def test_send_verification_email_returns_false_for_a_missing_user():
    assert send_verification_email.delay(424242).get() is False
    assert mail.outbox == []


def test_send_verification_email_is_registered_under_its_stable_name():
    assert send_verification_email.name == "accounts.send_verification_email"
