"""The members card's remove button: owners remove members, and nobody else removes anyone."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Membership, Role, User
from tests.accounts.helpers import (
    invite,
    signed_in_client,
)
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db


def _session_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def plain_member(organization) -> User:
    return member(organization=organization, role=Role.MEMBER, email="member@example.com")


# --- remove ----------------------------------------------------------------------------------------------------


def test_an_owner_removes_a_member_who_is_deactivated_and_whose_session_stops_working(
    owner_client, organization, plain_member
):
    members_client = signed_in_client(plain_member)
    assert members_client.get("/account/").status_code == 200
    membership_id = plain_member.membership.pk

    response = owner_client.post(f"/members/{membership_id}/remove/", {"confirm": "on"})

    assert response.status_code == 302
    assert response.url == "/account/"
    assert User.objects.get(pk=plain_member.pk).is_active is False
    assert not Membership.objects.filter(pk=membership_id).exists()
    after = members_client.get("/account/")
    assert after.status_code == 302
    assert after.url.startswith("/login/?next=")
    assert _messages(owner_client.get("/account/")) == [
        "Removed member@example.com. Their account is deactivated and can no longer sign in."
    ]


def test_removing_a_member_without_confirming_changes_nothing(owner_client, plain_member):
    response = owner_client.post(f"/members/{plain_member.membership.pk}/remove/")

    assert response.status_code == 302
    assert User.objects.get(pk=plain_member.pk).is_active is True
    assert Membership.objects.filter(pk=plain_member.membership.pk).exists()
    assert _messages(owner_client.get("/account/")) == ["Tick the box to confirm that you want to remove the member."]


def test_an_owner_cannot_remove_themselves(owner, owner_client):
    response = owner_client.post(f"/members/{owner.membership.pk}/remove/", {"confirm": "on"})

    assert response.status_code == 302
    assert User.objects.get(pk=owner.pk).is_active is True
    assert Membership.objects.filter(pk=owner.membership.pk).exists()
    assert _messages(owner_client.get("/account/")) == ["You can't remove yourself from the organization."]


def test_a_member_cannot_remove_anyone(owner, organization, plain_member):
    response = signed_in_client(plain_member).post(f"/members/{owner.membership.pk}/remove/", {"confirm": "on"})

    assert response.status_code == 404
    assert User.objects.filter(is_active=False).count() == 0
    assert Membership.objects.filter(organization=organization).count() == 2


def test_removing_requires_sign_in(client, plain_member):
    response = client.post(f"/members/{plain_member.membership.pk}/remove/", {"confirm": "on"})

    assert response.status_code == 302
    assert User.objects.get(pk=plain_member.pk).is_active is True


def test_removing_refuses_get(owner_client, plain_member):
    assert owner_client.get(f"/members/{plain_member.membership.pk}/remove/").status_code == 405
    assert User.objects.get(pk=plain_member.pk).is_active is True


def test_a_removed_member_cannot_sign_in_again(client, owner_client, plain_member):
    owner_client.post(f"/members/{plain_member.membership.pk}/remove/", {"confirm": "on"})

    response = client.post("/login/", {"email": "member@example.com", "password": "correct horse battery staple"})

    assert response.status_code == 200
    assert _session_user_id(client) is None


def test_staff_without_an_organization_cannot_invite_revoke_or_remove(organization, plain_member):
    invitation, _ = invite(organization)
    staff = signed_in_client(UserFactory(is_staff=True))

    assert staff.post("/members/invite/", {"email": "new@example.com"}).status_code == 404
    assert staff.post(f"/invitations/{invitation.pk}/revoke/").status_code == 404
    assert staff.post(f"/members/{plain_member.membership.pk}/remove/", {"confirm": "on"}).status_code == 404
    assert Invitation.objects.count() == 1
    assert Invitation.objects.get().revoked_at is None
    assert User.objects.get(pk=plain_member.pk).is_active is True


def test_the_owners_account_page_marks_a_lapsed_invitation_as_expired(owner_client, organization):
    invitation, _ = invite(organization, email="lapsed@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    page = owner_client.get("/account/").content.decode()

    row = page[page.index(f'id="invitation-{invitation.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "lapsed@example.com" in row
    assert "Expired" in row
