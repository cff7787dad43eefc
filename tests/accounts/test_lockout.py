"""Failed sign-ins are counted per account and per client IP; a locked-out attempt never reaches the hash."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.test import Client

from accounts.lockout import lockout_client_ip, lockout_username
from accounts.models import User
from tests.accounts.helpers import IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN, OVERLONG_IDN_ADDRESSES
from tests.factories import DEFAULT_PASSWORD, member

pytestmark = pytest.mark.django_db

LOCKOUT_MESSAGE = "Too many failed sign-in attempts. Try again in 15 minutes, or reset your password."


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 5


@pytest.fixture
def password_checks(monkeypatch) -> list[str]:
    """Every call of User.check_password, by the address of the user whose hash was checked."""
    calls: list[str] = []
    original = User.check_password

    def spy(self, raw_password):
        calls.append(self.email)
        return original(self, raw_password)

    monkeypatch.setattr(User, "check_password", spy)
    return calls


def _attempt(email: str, password: str, ip: str = "198.51.100.1"):
    return Client().post("/login/", {"email": email, "password": password}, REMOTE_ADDR=ip)


def _assert_locked_out(response) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert LOCKOUT_MESSAGE in response.content.decode()


def test_four_failures_do_not_lock_the_account():
    member(email="victim@example.com")
    for _ in range(4):
        assert _attempt("victim@example.com", "wrong guess").status_code == 200

    assert _attempt("victim@example.com", DEFAULT_PASSWORD).status_code == 302


def test_the_fifth_failure_is_answered_with_the_lockout_page():
    member(email="victim@example.com")
    for _ in range(4):
        _attempt("victim@example.com", "wrong guess")

    _assert_locked_out(_attempt("victim@example.com", "wrong guess"))


def test_after_five_failures_even_the_right_password_is_refused_without_checking_the_hash(password_checks):
    member(email="victim@example.com")
    for _ in range(5):
        _attempt("victim@example.com", "wrong guess")
    assert password_checks == ["victim@example.com"] * 5
    password_checks.clear()

    response = _attempt("victim@example.com", DEFAULT_PASSWORD)

    _assert_locked_out(response)
    assert password_checks == []


def test_a_locked_out_attempt_does_not_sign_in():
    member(email="victim@example.com")
    for _ in range(5):
        _attempt("victim@example.com", "wrong guess")
    client = Client()

    client.post("/login/", {"email": "victim@example.com", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="198.51.100.1")

    assert client.session.get("_auth_user_id") is None


def test_lockout_is_per_account_across_client_ips(password_checks):
    member(email="victim@example.com")
    for n in range(5):
        _attempt("victim@example.com", "wrong guess", ip=f"203.0.113.{n + 10}")
    password_checks.clear()

    response = _attempt("victim@example.com", DEFAULT_PASSWORD, ip="192.0.2.200")

    _assert_locked_out(response)
    assert password_checks == []


def test_lockout_counts_every_spelling_of_the_mailbox_as_one_account():
    member(email="johndoe@gmail.com")
    spellings = [
        "john.doe@gmail.com",
        "JohnDoe@gmail.com",
        "j.ohndoe+a@gmail.com",
        "johndoe+b@googlemail.com",
        "johndoe@gmail.com",
    ]
    for n, spelling in enumerate(spellings):
        _attempt(spelling, "wrong guess", ip=f"203.0.113.{n + 10}")

    _assert_locked_out(_attempt("John.Doe@gmail.com", DEFAULT_PASSWORD, ip="192.0.2.200"))


def test_lockout_is_per_client_ip_across_accounts(password_checks):
    member(email="target@example.com")
    for n in range(5):
        _attempt(f"guess{n}@example.com", "wrong guess", ip="203.0.113.66")
    password_checks.clear()

    response = _attempt("target@example.com", DEFAULT_PASSWORD, ip="203.0.113.66")

    _assert_locked_out(response)
    assert password_checks == []


def test_an_ip_lockout_does_not_lock_the_account_for_other_clients():
    member(email="target@example.com")
    for n in range(5):
        _attempt(f"guess{n}@example.com", "wrong guess", ip="203.0.113.66")

    assert _attempt("target@example.com", DEFAULT_PASSWORD, ip="198.51.100.2").status_code == 302


def test_a_successful_sign_in_before_the_limit_resets_the_count_of_the_account():
    member(email="victim@example.com")
    for n in range(4):
        _attempt("victim@example.com", "wrong guess", ip=f"203.0.113.{n + 10}")
    assert _attempt("victim@example.com", DEFAULT_PASSWORD, ip="198.51.100.2").status_code == 302
    for n in range(4):
        _attempt("victim@example.com", "wrong guess", ip=f"203.0.113.{n + 20}")

    assert _attempt("victim@example.com", DEFAULT_PASSWORD, ip="198.51.100.3").status_code == 302


def test_signing_in_to_another_account_does_not_erase_failures_against_the_targeted_account():
    """An attacker with an account of their own must not wipe the victim's count by signing in between guesses."""
    member(email="victim@example.com")
    member(email="mallory@example.com")
    for _ in range(4):
        _attempt("victim@example.com", "wrong guess", ip="203.0.113.66")
    assert _attempt("mallory@example.com", DEFAULT_PASSWORD, ip="203.0.113.66").status_code == 302
    _attempt("victim@example.com", "wrong guess", ip="203.0.113.66")

    _assert_locked_out(_attempt("victim@example.com", DEFAULT_PASSWORD, ip="192.0.2.200"))


def test_failures_are_recorded_in_the_database_under_the_canonical_mailbox_and_client_ip():
    _attempt("John.Doe+x@gmail.com", "wrong guess", ip="203.0.113.66")

    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == (
        "johndoe@gmail.com",
        "203.0.113.66",
        1,
    )


def test_failures_behind_a_trusted_proxy_are_counted_for_the_forwarded_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    Client().post(
        "/login/",
        {"email": "someone@example.com", "password": "wrong guess"},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="203.0.113.66",
    )

    assert AccessAttempt.objects.get().ip_address == "203.0.113.66"


# --- the callables django-axes is configured with ---------------------------------------------------------------


def test_lockout_username_is_the_canonical_mailbox_of_the_credentials(rf):
    request = rf.post("/login/", {"email": "other@example.com"})

    assert lockout_username(request, {"email": "John.Doe+x@GoogleMail.com"}) == "johndoe@gmail.com"
    assert lockout_username(request, {"username": "Ada@Example.com"}) == "ada@example.com"


def test_lockout_username_falls_back_to_the_posted_email(rf):
    request = rf.post("/login/", {"email": "Ada@Example.com"})

    assert lockout_username(request, None) == "ada@example.com"


def test_lockout_username_keeps_a_non_address_lower_cased_and_bounded(rf):
    request = rf.post("/login/")

    assert lockout_username(request, {"email": "NOT-AN-ADDRESS" + "X" * 300}) == ("not-an-address" + "x" * 300)[:254]
    assert lockout_username(request, {}) is None


@pytest.mark.parametrize("email", OVERLONG_IDN_ADDRESSES, ids=["overlong-domain", "overlong-canonical"])
def test_lockout_username_of_an_idn_address_too_long_once_encoded_is_the_address_as_typed(rf, email):
    assert lockout_username(rf.post("/login/"), {"email": email}) == email.lower()


def test_lockout_username_is_never_over_254_characters_even_when_lower_casing_lengthens_the_input(rf):
    typed = "İ" * 200 + "@example.com"  # "İ" lower-cases to two characters: 212 typed, 412 lower-cased

    username = lockout_username(rf.post("/login/"), {"email": typed})

    assert username == typed.lower()[:254]
    assert len(username) == 254


def test_a_failed_sign_in_with_an_idn_address_too_long_once_encoded_is_recorded_under_the_typed_address(rf):
    """The form refuses such an address before authenticating; whoever else calls authenticate() must not hit a
    DataError on AccessAttempt.username, a varchar(255)."""
    email = IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN
    request = rf.post("/login/", {"email": email, "password": "wrong"}, REMOTE_ADDR="198.51.100.1")

    assert authenticate(request, email=email, password="wrong") is None

    assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [(email.lower(), 1)]


def test_lockout_client_ip_is_the_client_ip(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.post("/login/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="198.51.100.4")

    assert lockout_client_ip(request) == "198.51.100.4"
