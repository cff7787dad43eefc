"""The password-reset pages."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from tests.accounts.helpers import (
    OVERLONG_IDN_ADDRESSES,
)
from tests.accounts.view_helpers import login
from tests.factories import DEFAULT_PASSWORD, member

pytestmark = pytest.mark.django_db


def _reset_link(body: str) -> str:
    links = re.findall(r"https?://\S+/password-reset/\S+/\S+/", body)
    assert len(links) == 1, body
    return links[0]


def test_password_reset_emails_the_account_found_by_its_canonical_mailbox(client):
    member(email="johndoe@gmail.com")

    response = client.post("/password-reset/", {"email": "John.Doe+reset@gmail.com"})

    assert response.status_code == 302
    assert response.url == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["johndoe@gmail.com"]
    assert mail.outbox[0].subject == "Reset your Moat password"


def test_password_reset_link_uses_the_site_url_not_the_request_host(client, settings):
    settings.SITE_URL = "https://portal.moat.example"
    member(email="someone@example.com")

    client.post("/password-reset/", {"email": "someone@example.com"}, HTTP_HOST="localhost")

    link = urlsplit(_reset_link(mail.outbox[0].body))
    assert (link.scheme, link.netloc) == ("https", "portal.moat.example")


def test_password_reset_with_a_forged_host_header_is_refused(client):
    member(email="someone@example.com")

    response = client.post("/password-reset/", {"email": "someone@example.com"}, HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert mail.outbox == []


def test_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client):
    response = client.post("/password-reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response.url == "/password-reset/sent/"
    assert mail.outbox == []


@pytest.mark.parametrize("email", OVERLONG_IDN_ADDRESSES, ids=["overlong-domain", "overlong-canonical"])
def test_password_reset_with_an_idn_address_too_long_once_encoded_shows_a_form_error_and_sends_nothing(client, email):
    response = client.post("/password-reset/", {"email": email})

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    assert mail.outbox == []


def test_password_reset_sends_nothing_to_an_inactive_account(client):
    member(email="gone@example.com", is_active=False)

    client.post("/password-reset/", {"email": "gone@example.com"})

    assert mail.outbox == []


def test_password_reset_link_sets_a_new_password_that_signs_in(client, settings):
    user = member(email="someone@example.com")
    client.post("/password-reset/", {"email": "someone@example.com"})
    path = urlsplit(_reset_link(mail.outbox[0].body)).path

    form_page = client.get(path, follow=True)
    set_password_path = form_page.redirect_chain[-1][0]
    response = client.post(
        set_password_path, {"new_password1": "quartz-meadow-ribbon-77", "new_password2": "quartz-meadow-ribbon-77"}
    )

    assert response.status_code == 302
    assert response.url == "/password-reset/complete/"
    user.refresh_from_db()
    assert user.check_password("quartz-meadow-ribbon-77")
    assert login(Client(), "someone@example.com", "quartz-meadow-ribbon-77").status_code == 302
    assert login(Client(), "someone@example.com", DEFAULT_PASSWORD).status_code == 200


def test_password_reset_link_works_only_once(client):
    member(email="someone@example.com")
    client.post("/password-reset/", {"email": "someone@example.com"})
    path = urlsplit(_reset_link(mail.outbox[0].body)).path
    set_password_path = client.get(path, follow=True).redirect_chain[-1][0]
    client.post(
        set_password_path, {"new_password1": "quartz-meadow-ribbon-77", "new_password2": "quartz-meadow-ribbon-77"}
    )

    again = Client().get(path)

    assert again.status_code == 200
    assert again.context["validlink"] is False
