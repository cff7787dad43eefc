"""The invitation pages: invite from the account page, revoke, accept by link (member removal: test_member_views)."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from accounts.models import Invitation, Membership, Role, SignupRecord, User
from legal.models import TermsAcceptance
from legal.selectors import terms_current
from tests.accounts.helpers import (
    OVERLONG_IDN_ADDRESSES,
    SIGNUP_PASSWORD,
    invitation_url_in,
    invite,
    signed_in_client,
)
from tests.factories import member

pytestmark = pytest.mark.django_db

ALREADY_INVITED = "There is already a pending invitation for this address. Revoke it to send a new one."
SIGN_OUT_FIRST = "Sign out first, then open the invitation link again"


def _counts() -> tuple[int, ...]:
    return (
        User.objects.count(),
        Membership.objects.count(),
        SignupRecord.objects.count(),
        TermsAcceptance.objects.count(),
    )


def _session_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _accept_data(**overrides) -> dict:
    return {"password": SIGNUP_PASSWORD, "accept_terms": "on"} | overrides


@pytest.fixture
def plain_member(organization) -> User:
    return member(organization=organization, role=Role.MEMBER, email="member@example.com")


# --- the members card ------------------------------------------------------------------------------------------


def test_the_owners_account_page_has_the_invite_form_pending_invitations_and_remove_buttons(
    owner_client, organization, plain_member
):
    invitation, _ = invite(organization, email="pending@example.com")

    response = owner_client.get("/account/")

    page = response.content.decode()
    assert response.status_code == 200
    assert set(response.context["invite_form"].fields) == {"email"}
    assert list(response.context["invitations"]) == [invitation]
    assert "Send invitation" in page
    assert "pending@example.com" in page
    assert f'action="/invitations/{invitation.pk}/revoke/"' in page
    assert f'action="/members/{plain_member.membership.pk}/remove/"' in page
    assert f'action="/members/{organization.memberships.get(role=Role.OWNER).pk}/remove/"' not in page


def test_a_members_account_page_has_no_invite_revoke_or_remove_controls(organization, plain_member):
    invite(organization, email="pending@example.com")

    response = signed_in_client(plain_member).get("/account/")

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["invite_form"] is None
    assert list(response.context["invitations"]) == []
    assert "Send invitation" not in page
    assert "pending@example.com" not in page
    assert "/revoke/" not in page
    assert "/remove/" not in page


# --- invite ----------------------------------------------------------------------------------------------------


def test_an_owner_invites_a_mailbox_and_it_gets_one_email_with_the_link(
    owner_client, organization, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://portal.moat.example"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/members/invite/", {"email": "new@example.com"})

    assert response.status_code == 302
    assert response.url == "/account/"
    invitation = Invitation.objects.get()
    assert invitation.organization == organization
    assert invitation.email == "new@example.com"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    url = invitation_url_in(mail.outbox[0].body)
    assert url.startswith("https://portal.moat.example/invitations/")
    assert _messages(owner_client.get("/account/")) == ["Invitation sent to new@example.com."]


def test_the_invitation_row_holds_no_trace_of_the_emailed_token(owner_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/members/invite/", {"email": "new@example.com"})

    token = urlsplit(invitation_url_in(mail.outbox[0].body)).path.split("/")[2]
    row = Invitation.objects.values().get()
    assert token
    assert not any(token in str(value) for value in row.values())


def test_a_member_cannot_invite_and_nothing_is_created(plain_member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in_client(plain_member).post("/members/invite/", {"email": "new@example.com"})

    assert response.status_code == 404
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def test_inviting_requires_sign_in(client, organization):
    response = client.post("/members/invite/", {"email": "new@example.com"})

    assert response.status_code == 302
    assert response.url.startswith("/login/?next=")
    assert Invitation.objects.count() == 0


def test_inviting_refuses_get(owner_client):
    assert owner_client.get("/members/invite/").status_code == 405


def test_a_second_pending_invitation_of_the_mailbox_is_refused_with_a_form_error(
    owner_client, organization, django_capture_on_commit_callbacks
):
    first, _ = invite(organization, email="johndoe@gmail.com")

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/members/invite/", {"email": "John.Doe@gmail.com"})

    assert response.status_code == 400
    assert response.context["invite_form"].errors == {"email": [ALREADY_INVITED]}
    assert escape(ALREADY_INVITED) in response.content.decode()
    assert response.context["organization"] == organization
    assert list(Invitation.objects.all()) == [first]
    assert mail.outbox == []


def test_inviting_a_disposable_address_is_refused_with_a_form_error(owner_client):
    response = owner_client.post("/members/invite/", {"email": "someone@mailinator.com"})

    assert response.status_code == 400
    [message] = response.context["invite_form"].errors["email"]
    assert "disposable" in message
    assert Invitation.objects.count() == 0


def test_inviting_an_address_that_has_an_account_is_refused_with_a_form_error(owner_client, other_owner):
    response = owner_client.post("/members/invite/", {"email": "Rival@Example.org"})

    assert response.status_code == 400
    assert response.context["invite_form"].errors == {
        "email": [
            "This address already has a Moat account, and an account belongs to one organization only, "
            "so it can't be invited."
        ]
    }
    assert Invitation.objects.count() == 0


def test_inviting_a_malformed_address_is_refused_with_a_form_error(owner_client):
    response = owner_client.post("/members/invite/", {"email": "not-an-address"})

    assert response.status_code == 400
    assert response.context["invite_form"].errors == {"email": ["Enter a valid email address."]}
    assert Invitation.objects.count() == 0


@pytest.mark.parametrize("email", OVERLONG_IDN_ADDRESSES, ids=["overlong-domain", "overlong-canonical"])
def test_inviting_an_idn_address_too_long_once_encoded_is_refused_with_a_form_error(
    owner_client, email, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/members/invite/", {"email": email})

    assert response.status_code == 400
    assert response.context["invite_form"].errors == {"email": ["Enter a valid email address."]}
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def test_an_owner_with_an_unverified_email_is_told_to_verify_first_and_nothing_is_sent(
    organization, django_capture_on_commit_callbacks
):
    unverified = member(organization=organization, email="unverified@example.com", email_verified_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in_client(unverified).post("/members/invite/", {"email": "new@example.com"})

    assert response.status_code == 400
    assert response.context["invite_form"].errors == {"email": ["Verify your email address before inviting people."]}
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def test_an_owner_with_20_pending_invitations_is_told_to_revoke_one_and_nothing_is_sent(
    owner_client, organization, django_capture_on_commit_callbacks
):
    for n in range(20):
        invite(organization, email=f"invitee{n}@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/members/invite/", {"email": "one-too-many@example.com"})

    assert response.status_code == 400
    assert response.context["invite_form"].errors == {
        "email": [
            "Your organization already has 20 pending invitations, the most it can have at once. "
            "Revoke one, or wait until one is accepted or expires, to send a new one."
        ]
    }
    assert Invitation.objects.count() == 20
    assert mail.outbox == []


# --- accept ----------------------------------------------------------------------------------------------------


def test_the_accept_page_shows_the_organization_and_the_invited_address(client, organization):
    _, token = invite(organization, email="ada@example.com")

    response = client.get(f"/invitations/{token}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert organization.name in page
    assert "ada@example.com" in page
    assert set(response.context["form"].fields) == {"password", "accept_terms"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_accepting_creates_a_verified_member_records_the_signup_and_terms_and_signs_them_in(client, organization):
    _, token = invite(organization, email="ada@example.com")

    response = client.post(
        f"/invitations/{token}/", _accept_data(), REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT="Mozilla/5.0 (Invite)"
    )

    assert response.status_code == 302
    assert response.url == "/account/"
    user = User.objects.get(email="ada@example.com")
    assert user.check_password(SIGNUP_PASSWORD)
    assert user.email_verified_at is not None
    assert user.membership.organization == organization
    assert user.membership.role == Role.MEMBER
    record = SignupRecord.objects.get(user=user)
    assert (record.ip_address, record.user_agent) == ("198.51.100.23", "Mozilla/5.0 (Invite)")
    acceptance = TermsAcceptance.objects.get(user=user)
    assert acceptance.terms == terms_current()
    assert acceptance.ip_address == "198.51.100.23"
    assert Invitation.objects.get().accepted_at is not None
    assert _session_user_id(client) == str(user.pk)
    overview = client.get("/account/")
    assert overview.status_code == 200
    assert _messages(overview) == [f"Welcome to {organization.name} on Moat."]


def test_the_emailed_link_opens_the_accept_page(owner_client, client, organization, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/members/invite/", {"email": "new@example.com"})
    path = urlsplit(invitation_url_in(mail.outbox[0].body)).path

    response = client.post(path, _accept_data())

    assert response.status_code == 302
    assert User.objects.get(email="new@example.com").membership.organization == organization


def test_accepting_with_a_weak_password_shows_a_form_error_and_creates_nothing(client, organization):
    _, token = invite(organization)
    counts = _counts()

    response = client.post(f"/invitations/{token}/", _accept_data(password="password123"))

    assert response.status_code == 200
    assert response.context["form"].errors == {"password": ["This password is too common."]}
    assert _counts() == counts
    assert Invitation.objects.get().accepted_at is None
    assert _session_user_id(client) is None


def test_accepting_with_a_password_like_the_invited_address_is_refused(client, organization):
    _, token = invite(organization, email="margaretwhitfield@example.com")

    response = client.post(f"/invitations/{token}/", _accept_data(password="margaretwhitfield1"))

    assert response.context["form"].errors == {"password": ["The password is too similar to the email."]}
    assert User.objects.filter(email="margaretwhitfield@example.com").count() == 0


def test_accepting_without_the_terms_explains_why_and_creates_nothing(client, organization):
    _, token = invite(organization)
    counts = _counts()

    response = client.post(f"/invitations/{token}/", {"password": SIGNUP_PASSWORD})

    assert response.status_code == 200
    assert response.context["form"].errors == {"accept_terms": ["You must accept the Terms of Service to join."]}
    assert _counts() == counts


def _expire(invitation: Invitation, token: str) -> str:
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return token


def _revoke(invitation: Invitation, token: str) -> str:
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())
    return token


def _use(invitation: Invitation, token: str) -> str:
    Client().post(f"/invitations/{token}/", _accept_data())
    return token


def _tamper(invitation: Invitation, token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_expire, "This invitation has expired. Ask the person who invited you for a new one."),
        (_revoke, "This invitation was withdrawn. Ask the person who invited you for a new one."),
        (_use, "This invitation has already been accepted. Sign in instead."),
        (_tamper, "This invitation link is not valid."),
    ],
    ids=["expired", "revoked", "used", "tampered"],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_unusable_invitation_link_answers_400_with_the_reason_and_creates_nothing(
    client, organization, spoil, message, method
):
    invitation, token = invite(organization)
    url_token = spoil(invitation, token)
    counts = _counts()

    response = getattr(client, method)(f"/invitations/{url_token}/", _accept_data(password="another-long-pass-7"))

    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert _counts() == counts
    assert _session_user_id(client) is None


def test_garbage_in_place_of_a_token_answers_400(client):
    response = client.get("/invitations/not-a-token/")

    assert response.status_code == 400
    assert "This invitation link is not valid." in response.content.decode()


def test_a_signed_in_person_opening_an_invitation_is_told_to_sign_out_first(organization, other_owner):
    _, token = invite(organization)
    client = signed_in_client(other_owner)
    counts = _counts()

    page = client.get(f"/invitations/{token}/")
    posted = client.post(f"/invitations/{token}/", _accept_data())

    assert page.status_code == 200
    assert SIGN_OUT_FIRST in page.content.decode()
    assert "form" not in page.context
    assert posted.status_code == 200
    assert SIGN_OUT_FIRST in posted.content.decode()
    assert _counts() == counts
    assert Invitation.objects.get().accepted_at is None
    assert _session_user_id(client) == str(other_owner.pk)


# --- revoke ----------------------------------------------------------------------------------------------------


def test_an_owner_revokes_an_invitation_and_its_link_stops_working(owner_client, client, organization):
    invitation, token = invite(organization, email="pending@example.com")

    response = owner_client.post(f"/invitations/{invitation.pk}/revoke/")

    assert response.status_code == 302
    assert response.url == "/account/"
    assert Invitation.objects.get().revoked_at is not None
    assert _messages(owner_client.get("/account/")) == [
        "Revoked the invitation of pending@example.com. Its link no longer works."
    ]
    assert client.get(f"/invitations/{token}/").status_code == 400


def test_revoking_an_invitation_twice_says_it_was_already_revoked(owner_client, organization):
    invitation, _ = invite(organization)
    owner_client.post(f"/invitations/{invitation.pk}/revoke/")
    owner_client.get("/account/")  # consume the first message

    owner_client.post(f"/invitations/{invitation.pk}/revoke/")

    assert _messages(owner_client.get("/account/")) == ["That invitation was already accepted or revoked."]


def test_a_member_cannot_revoke_an_invitation(organization, plain_member):
    invitation, _ = invite(organization)

    response = signed_in_client(plain_member).post(f"/invitations/{invitation.pk}/revoke/")

    assert response.status_code == 404
    assert Invitation.objects.get().revoked_at is None


def test_revoking_an_unknown_invitation_answers_404(owner_client):
    assert owner_client.post("/invitations/424242/revoke/").status_code == 404
