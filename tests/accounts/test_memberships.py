"""Removing a member from an organization: who may, who may not, and what goes with them."""

import pytest

from accounts.errors import MembershipError, OwnerRequiredError
from accounts.models import Membership, Role, SignupRecord, User
from accounts.services import (
    invitation_accept,
    membership_remove,
)
from core.errors import NotFoundError
from legal.models import TermsAcceptance
from tests.accounts.helpers import SIGNUP_PASSWORD, invite
from tests.factories import member

pytestmark = pytest.mark.django_db


def _accept(token: str, **overrides) -> User:
    fields = {"token": token, "password": SIGNUP_PASSWORD, "ip_address": "198.51.100.7", "user_agent": "curl/8.0"}
    return invitation_accept(**(fields | overrides))


# --- membership_remove -----------------------------------------------------------------------------------------


def test_membership_remove_deletes_the_membership_and_deactivates_the_user(owner, organization):
    removed = member(organization=organization, role=Role.MEMBER, email="leaver@example.com")
    membership_id = removed.membership.pk

    result = membership_remove(organization=organization, membership_id=membership_id, actor=owner)

    assert result == removed
    assert result.is_active is False
    assert User.objects.get(pk=removed.pk).is_active is False
    assert not Membership.objects.filter(pk=membership_id).exists()
    assert list(Membership.objects.filter(organization=organization)) == [owner.membership]


def test_membership_remove_keeps_the_removed_users_signup_evidence(owner, organization):
    _, token = invite(organization)
    removed = _accept(token)

    membership_remove(organization=organization, membership_id=removed.membership.pk, actor=owner)

    assert SignupRecord.objects.filter(user=removed).count() == 1
    assert TermsAcceptance.objects.filter(user=removed).count() == 1


def test_membership_remove_refuses_an_owner_removing_themselves(owner, organization):
    with pytest.raises(MembershipError) as caught:
        membership_remove(organization=organization, membership_id=owner.membership.pk, actor=owner)

    assert caught.value.message == "You can't remove yourself from the organization."
    owner.refresh_from_db()
    assert owner.is_active is True
    assert Membership.objects.filter(pk=owner.membership.pk).exists()


def test_membership_remove_by_a_member_is_refused_and_changes_nothing(owner, organization):
    plain_member = member(organization=organization, role=Role.MEMBER)
    other_member = member(organization=organization, role=Role.MEMBER)

    with pytest.raises(OwnerRequiredError):
        membership_remove(organization=organization, membership_id=other_member.membership.pk, actor=plain_member)

    assert Membership.objects.filter(organization=organization).count() == 3
    assert User.objects.filter(is_active=False).count() == 0


def test_two_owners_removing_each_other_leave_the_organization_one_owner(owner, organization):
    second_owner = member(organization=organization, role=Role.OWNER)
    membership_remove(organization=organization, membership_id=second_owner.membership.pk, actor=owner)

    with pytest.raises(OwnerRequiredError):
        membership_remove(organization=organization, membership_id=owner.membership.pk, actor=second_owner)

    assert list(Membership.objects.filter(organization=organization, role=Role.OWNER)) == [owner.membership]
    assert User.objects.get(pk=owner.pk).is_active is True


def test_membership_remove_of_another_organizations_member_is_not_found_and_changes_nothing(
    owner, organization, other_owner
):
    with pytest.raises(NotFoundError):
        membership_remove(organization=organization, membership_id=other_owner.membership.pk, actor=owner)

    assert User.objects.get(pk=other_owner.pk).is_active is True
    assert Membership.objects.filter(pk=other_owner.membership.pk).exists()
