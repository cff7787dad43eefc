"""Sign-in and sign-out."""

import pytest
from axes.models import AccessAttempt
from django.utils.html import escape

from tests.accounts.helpers import (
    OVERLONG_IDN_ADDRESSES,
    signed_in_client,
)
from tests.accounts.view_helpers import INVALID_LOGIN, login, session_user_id
from tests.factories import DEFAULT_PASSWORD, UserFactory, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("spelling", ["john.doe@gmail.com", "JOHNDOE@GMAIL.COM", "J.o.h.n.D.o.e+portal@googlemail.com"])
def test_login_works_with_any_spelling_of_the_mailbox(client, spelling):
    user = member(email="johndoe@gmail.com")

    response = login(client, spelling)

    assert response.status_code == 302
    assert response.url == "/account/"
    assert session_user_id(client) == str(user.pk)


def test_login_with_a_wrong_password_shows_a_form_error(client):
    member(email="someone@example.com")

    response = login(client, "someone@example.com", "not the password")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [INVALID_LOGIN]
    assert escape(INVALID_LOGIN) in response.content.decode()
    assert session_user_id(client) is None


def test_login_with_an_unknown_email_shows_the_same_error(client):
    response = login(client, "nobody@example.com")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [INVALID_LOGIN]
    assert session_user_id(client) is None


def test_login_refuses_an_inactive_user_even_with_the_right_password(client):
    member(email="gone@example.com", is_active=False)

    response = login(client, "gone@example.com")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [INVALID_LOGIN]
    assert session_user_id(client) is None


def test_login_with_missing_fields_shows_field_errors(client):
    response = client.post("/login/", {"email": "", "password": ""})

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"email", "password"}


@pytest.mark.parametrize("email", OVERLONG_IDN_ADDRESSES, ids=["overlong-domain", "overlong-canonical"])
def test_login_with_an_idn_address_too_long_once_encoded_shows_a_form_error_and_records_nothing(client, email):
    response = login(client, email)

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    assert AccessAttempt.objects.count() == 0
    assert session_user_id(client) is None


def test_login_sends_staff_to_the_console(client):
    UserFactory(email="operator@example.com", is_staff=True)

    response = login(client, "operator@example.com")

    assert response.status_code == 302
    assert response.url == "/console/"


@pytest.mark.parametrize("next_url", ["/keys/", "/account/?tab=usage"])
def test_login_honours_a_relative_next_url(client, next_url):
    member(email="someone@example.com")

    response = client.post(
        "/login/?next=/ignored/", {"email": "someone@example.com", "password": DEFAULT_PASSWORD, "next": next_url}
    )

    assert response.status_code == 302
    assert response.url == next_url


def test_login_honours_a_next_url_from_the_query_string(client):
    member(email="someone@example.com")

    response = client.post("/login/?next=/keys/", {"email": "someone@example.com", "password": DEFAULT_PASSWORD})

    assert response.url == "/keys/"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "///evil.example/phish",
        "/\\evil.example/phish",
        "javascript:alert(1)",
        "http://testserver.evil.example/",
    ],
)
def test_login_refuses_to_redirect_off_site(client, next_url):
    member(email="someone@example.com")

    response = client.post("/login/", {"email": "someone@example.com", "password": DEFAULT_PASSWORD, "next": next_url})

    assert response.status_code == 302
    assert response.url == "/account/"


def test_login_page_does_not_echo_an_off_site_next_url(client):
    response = client.get("/login/", {"next": "https://evil.example/phish"})

    assert response.status_code == 200
    assert response.context["next"] == ""
    assert "evil.example" not in response.content.decode()


def test_login_page_sends_a_signed_in_person_to_their_account():
    client = signed_in_client(member())

    response = client.get("/login/")

    assert response.status_code == 302
    assert response.url == "/account/"


def test_logout_refuses_get_and_keeps_the_session():
    user = member()
    client = signed_in_client(user)

    response = client.get("/logout/")

    assert response.status_code == 405
    assert session_user_id(client) == str(user.pk)


def test_logout_by_post_signs_out_and_returns_to_the_login_page():
    client = signed_in_client(member())

    response = client.post("/logout/")

    assert response.status_code == 302
    assert response.url == "/login/"
    assert session_user_id(client) is None
    assert client.get("/account/").status_code == 302
