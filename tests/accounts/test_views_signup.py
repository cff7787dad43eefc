"""The sign-up page."""

from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone
from django.utils.html import escape

from accounts.models import Membership, Role, SignupRecord, User
from apikeys.models import ApiKey
from legal.models import TermsAcceptance
from legal.selectors import terms_current
from tests.accounts.helpers import (
    OVERLONG_IDN_ADDRESSES,
    SIGNUP_PASSWORD,
    signed_in_client,
    verification_url_in,
)
from tests.accounts.view_helpers import record_counts, session_user_id
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_signup_page_shows_the_form(client):
    response = client.get("/signup/")

    assert response.status_code == 200
    assert set(response.context["form"].fields) == {"email", "password", "organization", "accept_terms"}


def test_signup_page_sends_a_signed_in_person_to_their_account():
    client = signed_in_client(member())

    response = client.get("/signup/")

    assert response.status_code == 302
    assert response.url == "/account/"


def test_signup_creates_the_user_owner_membership_and_free_organization(
    client, signup_data, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/signup/", signup_data)

    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "Ada.Lovelace@example.com"
    assert user.email_canonical == "ada.lovelace@example.com"
    assert user.check_password(SIGNUP_PASSWORD)
    assert user.email_verified_at is None
    membership = Membership.objects.get()
    assert membership.user == user
    assert membership.role == Role.OWNER
    assert membership.organization.name == "Analytical Engines"
    assert membership.organization.tier.code == "free"


def test_signup_records_the_client_ip_user_agent_and_time(client, signup_data, django_capture_on_commit_callbacks):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data, REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT="Mozilla/5.0 (Signup)")

    record = SignupRecord.objects.get()
    assert record.user == User.objects.get()
    assert record.ip_address == "198.51.100.23"
    assert record.user_agent == "Mozilla/5.0 (Signup)"
    assert record.email_domain == "example.com"
    assert before <= record.created_at <= timezone.now()


def test_signup_records_acceptance_of_the_current_terms_with_ip_and_user_agent(
    client, signup_data, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data, REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT="Mozilla/5.0 (Signup)")

    acceptance = TermsAcceptance.objects.get()
    assert acceptance.user == User.objects.get()
    assert acceptance.terms == terms_current()
    assert acceptance.ip_address == "198.51.100.23"
    assert acceptance.user_agent == "Mozilla/5.0 (Signup)"


def test_signup_sends_exactly_one_verification_email_with_the_site_url_link(
    client, signup_data, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://portal.moat.example"
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["Ada.Lovelace@example.com"]
    url = verification_url_in(message.body)
    assert url.startswith("https://portal.moat.example/verify-email/")

    response = client.get(urlsplit(url).path)

    assert response.status_code == 302
    assert User.objects.get().email_verified_at is not None


def test_signup_signs_the_person_in_and_sends_them_to_their_account(
    client, signup_data, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/signup/", signup_data)

    assert response.status_code == 302
    assert response.url == "/account/"
    assert session_user_id(client) == str(User.objects.get().pk)
    assert client.get("/account/").status_code == 200


def test_signup_creates_no_api_key(client, signup_data, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data)

    assert User.objects.count() == 1
    assert ApiKey.objects.count() == 0


def test_signup_behind_no_trusted_proxy_ignores_a_forwarded_for_header(
    client, signup_data, settings, django_capture_on_commit_callbacks
):
    settings.TRUSTED_PROXIES = []
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data, REMOTE_ADDR="198.51.100.23", HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert SignupRecord.objects.get().ip_address == "198.51.100.23"


def test_signup_from_an_untrusted_client_ignores_its_forwarded_for_header(
    client, signup_data, settings, django_capture_on_commit_callbacks
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data, REMOTE_ADDR="198.51.100.23", HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert SignupRecord.objects.get().ip_address == "198.51.100.23"


def test_signup_through_a_trusted_proxy_records_the_forwarded_client(
    client, signup_data, settings, django_capture_on_commit_callbacks
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/signup/", signup_data, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert SignupRecord.objects.get().ip_address == "203.0.113.99"
    assert TermsAcceptance.objects.get().ip_address == "203.0.113.99"


@pytest.mark.parametrize("missing", ["email", "password", "organization", "accept_terms"])
def test_signup_with_a_missing_field_shows_a_form_error_and_creates_nothing(client, signup_data, missing):
    del signup_data[missing]
    counts = record_counts()

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert list(response.context["form"].errors) == [missing]
    assert record_counts() == counts
    assert mail.outbox == []


def test_signup_without_accepting_the_terms_explains_why(client, signup_data):
    del signup_data["accept_terms"]

    response = client.post("/signup/", signup_data)

    assert response.context["form"].errors == {"accept_terms": ["You must accept the Terms of Service to sign up."]}
    assert User.objects.count() == 0


@pytest.mark.parametrize("email", ["not-an-address", "ada@", "@example.com", "ada lovelace@example.com"])
def test_signup_refuses_a_malformed_email(client, signup_data, email):
    signup_data["email"] = email

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    assert User.objects.count() == 0


@pytest.mark.parametrize("email", OVERLONG_IDN_ADDRESSES, ids=["overlong-domain", "overlong-canonical"])
def test_signup_refuses_an_idn_address_too_long_once_encoded_with_a_form_error_and_creates_nothing(
    client, signup_data, email, django_capture_on_commit_callbacks
):
    signup_data["email"] = email
    counts = record_counts()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    assert record_counts() == counts
    assert mail.outbox == []
    assert session_user_id(client) is None


@pytest.mark.parametrize(
    ("password", "error"),
    [
        ("short1!", "This password is too short. It must contain at least 10 characters."),
        ("password123", "This password is too common."),
        ("8675309152", "This password is entirely numeric."),
    ],
)
def test_signup_refuses_a_weak_password(client, signup_data, password, error):
    signup_data["password"] = password
    counts = record_counts()

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert error in response.context["form"].errors["password"]
    assert list(response.context["form"].errors) == ["password"]
    assert record_counts() == counts


def test_signup_refuses_a_password_similar_to_the_email_address(client, signup_data):
    signup_data["email"] = "margaretwhitfield@example.com"
    signup_data["password"] = "margaretwhitfield1"

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert response.context["form"].errors == {"password": ["The password is too similar to the email."]}
    assert User.objects.count() == 0


def test_signup_refuses_a_disposable_email_domain_with_a_clear_message(client, signup_data):
    signup_data["email"] = "someone@mailinator.com"

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    [message] = response.context["form"].errors["email"]
    assert "disposable" in message
    assert escape(message) in response.content.decode()
    assert record_counts()[:4] == (0, 0, 0, 0)


def test_signup_refuses_a_subdomain_of_a_disposable_domain(client, signup_data):
    signup_data["email"] = "someone@relay.mailinator.com"

    response = client.post("/signup/", signup_data)

    assert "disposable" in response.context["form"].errors["email"][0]
    assert User.objects.count() == 0


def test_signup_accepts_an_allowlisted_disposable_domain(
    client, signup_data, settings, django_capture_on_commit_callbacks
):
    settings.DISPOSABLE_EMAIL_ALLOWLIST = ["mailinator.com"]
    signup_data["email"] = "team@mailinator.com"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/signup/", signup_data)

    assert response.status_code == 302
    assert User.objects.get().email == "team@mailinator.com"


def test_signup_refuses_an_address_whose_mailbox_already_has_an_account(client, signup_data):
    existing = member(email="johndoe@gmail.com")
    signup_data["email"] = "John.Doe+x@gmail.com"
    counts = record_counts()

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "email": ["An account already exists for this email address. Sign in instead."]
    }
    assert record_counts() == counts
    assert list(User.objects.all()) == [existing]


def test_signup_refuses_the_same_mailbox_spelled_with_googlemail(client, signup_data):
    member(email="johndoe@gmail.com")
    signup_data["email"] = "JohnDoe@googlemail.com"

    response = client.post("/signup/", signup_data)

    assert list(response.context["form"].errors) == ["email"]
    assert User.objects.count() == 1


def test_signup_refuses_an_organization_name_over_100_characters(client, signup_data):
    signup_data["organization"] = "O" * 101

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "organization": ["Ensure this value has at most 100 characters (it has 101)."]
    }
    assert record_counts()[:4] == (0, 0, 0, 0)


@pytest.mark.parametrize("name", ["", "    "])
def test_signup_refuses_a_blank_organization_name(client, signup_data, name):
    signup_data["organization"] = name

    response = client.post("/signup/", signup_data)

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["organization"]
    assert User.objects.count() == 0


def test_signup_form_errors_do_not_sign_anyone_in(client, signup_data):
    signup_data["password"] = "password123"

    client.post("/signup/", signup_data)

    assert session_user_id(client) is None
