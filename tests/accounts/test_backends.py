"""Sign-in by the canonical mailbox."""

import pytest

from accounts.backends import EmailBackend
from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend() -> EmailBackend:
    return EmailBackend()


@pytest.fixture
def password_hashes(monkeypatch) -> list[str]:
    """Every password hash computed, whether to check a stored hash or to set one."""
    calls: list[str] = []
    check, set_ = User.check_password, User.set_password

    def spy_check(self, raw_password):
        calls.append("check")
        return check(self, raw_password)

    def spy_set(self, raw_password):
        calls.append("set")
        return set_(self, raw_password)

    monkeypatch.setattr(User, "check_password", spy_check)
    monkeypatch.setattr(User, "set_password", spy_set)
    return calls


@pytest.mark.parametrize(
    "address", ["johndoe@gmail.com", "John.Doe@Gmail.com", "johndoe+anything@googlemail.com", " JOHNDOE@GMAIL.COM "]
)
def test_authenticate_finds_the_account_by_any_spelling_of_its_mailbox(rf, backend, address):
    user = UserFactory(email="johndoe@gmail.com")

    assert backend.authenticate(rf.post("/login/"), email=address, password=DEFAULT_PASSWORD) == user


def test_authenticate_accepts_the_address_as_username_for_djangos_own_callers(rf, backend):
    user = UserFactory(email="ada@example.com")

    assert backend.authenticate(rf.post("/login/"), username="ADA@example.com", password=DEFAULT_PASSWORD) == user


def test_authenticate_refuses_a_wrong_password(rf, backend):
    UserFactory(email="ada@example.com")

    assert backend.authenticate(rf.post("/login/"), email="ada@example.com", password="nope") is None


def test_authenticate_refuses_an_inactive_user_with_the_right_password(rf, backend):
    UserFactory(email="ada@example.com", is_active=False)

    assert backend.authenticate(rf.post("/login/"), email="ada@example.com", password=DEFAULT_PASSWORD) is None


def test_authenticate_refuses_an_account_without_a_usable_password(rf, backend):
    user = UserFactory(email="ada@example.com")
    user.set_unusable_password()
    user.save()

    assert backend.authenticate(rf.post("/login/"), email="ada@example.com", password="") is None


def test_authenticate_for_an_unknown_address_still_computes_a_hash(rf, backend, password_hashes):
    assert backend.authenticate(rf.post("/login/"), email="nobody@example.com", password="guess") is None

    assert password_hashes == ["set"]


def test_authenticate_for_a_known_address_checks_the_hash_once(rf, backend, password_hashes):
    UserFactory(email="ada@example.com")
    password_hashes.clear()

    backend.authenticate(rf.post("/login/"), email="ada@example.com", password="guess")

    assert password_hashes == ["check"]


def test_authenticate_for_a_malformed_address_returns_none_after_hashing(rf, backend, password_hashes):
    assert backend.authenticate(rf.post("/login/"), email="not-an-address", password="guess") is None

    assert password_hashes == ["set"]


@pytest.mark.parametrize(("email", "password"), [(None, "guess"), ("", "guess"), ("ada@example.com", None)])
def test_authenticate_without_an_address_or_a_password_returns_none(rf, backend, email, password):
    UserFactory(email="ada@example.com")

    assert backend.authenticate(rf.post("/login/"), email=email, password=password) is None


def test_get_user_returns_an_active_user_and_not_an_inactive_one(backend):
    active = UserFactory()
    inactive = UserFactory(is_active=False)

    assert backend.get_user(active.pk) == active
    assert backend.get_user(inactive.pk) is None


def test_the_manager_finds_a_user_by_natural_key_in_any_spelling():
    user = UserFactory(email="johndoe@gmail.com")

    assert User.objects.get_by_natural_key("John.Doe+x@gmail.com") == user


def test_saving_a_user_keeps_the_canonical_mailbox_in_step_with_the_address():
    user = UserFactory(email="first@example.com")

    user.email = "Second.Person+tag@GoogleMail.com"
    user.save()

    assert User.objects.get(pk=user.pk).email_canonical == "secondperson@gmail.com"
