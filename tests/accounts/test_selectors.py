"""Reads of accounts."""

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.models import Role
from accounts.selectors import is_owner, membership_for_user, organization_members
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db


def test_membership_for_user_returns_the_membership_with_its_organization(owner, organization):
    membership = membership_for_user(user=owner)

    assert membership.organization == organization
    assert membership.role == Role.OWNER


def test_membership_for_user_is_none_for_staff_without_an_organization_and_for_anonymous():
    assert membership_for_user(user=UserFactory(is_staff=True)) is None
    assert membership_for_user(user=AnonymousUser()) is None


def test_organization_members_lists_exactly_that_organizations_members(organization, other_owner):
    colleague = member(organization=organization, role=Role.MEMBER)
    owner = organization.memberships.get(role=Role.OWNER).user

    members = {m.user for m in organization_members(organization=organization)}

    assert members == {colleague, owner}
    assert other_owner not in members


def test_is_owner_is_true_only_for_an_owner_membership(owner, organization):
    colleague = member(organization=organization, role=Role.MEMBER)

    assert is_owner(membership=owner.membership) is True
    assert is_owner(membership=colleague.membership) is False
    assert is_owner(membership=None) is False
