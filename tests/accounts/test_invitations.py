"""Writes and reads of invitations: invite, revoke, accept (removing members: test_memberships.py)."""

import hashlib
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.errors import InvitationError, InvitationTokenError, OwnerRequiredError
from accounts.models import Invitation, Membership, Role, SignupRecord, User
from accounts.selectors import (
    invitation_get_for_org,
    invitation_list_pending_for_org,
    membership_get_for_org,
)
from accounts.services import (
    MAX_PENDING_INVITATIONS,
    invitation_accept,
    invitation_create,
    invitation_email_send,
    invitation_revoke,
)
from accounts.tasks import send_invitation_email
from core.errors import NotFoundError, PermissionDeniedError
from legal.models import TermsAcceptance
from legal.selectors import terms_current
from tests.accounts.helpers import OVERLONG_IDN_ADDRESSES, SIGNUP_PASSWORD, invitation_url_in, invite
from tests.concurrency import second_waits_for_first
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db

ALREADY_INVITED = "There is already a pending invitation for this address. Revoke it to send a new one."
ACCOUNT_EXISTS = (
    "This address already has a Moat account, and an account belongs to one organization only, so it can't be invited."
)
DISPOSABLE = "Addresses from disposable email providers can't be used. Please use a permanent address."
NOT_VALID = "This invitation link is not valid."
UNVERIFIED_INVITER = "Verify your email address before inviting people."
TOO_MANY_PENDING = (
    "Your organization already has 20 pending invitations, the most it can have at once. "
    "Revoke one, or wait until one is accepted or expires, to send a new one."
)


def _accept(token: str, **overrides) -> User:
    fields = {"token": token, "password": SIGNUP_PASSWORD, "ip_address": "198.51.100.7", "user_agent": "curl/8.0"}
    return invitation_accept(**(fields | overrides))


def _counts() -> tuple[int, ...]:
    return (
        User.objects.count(),
        Membership.objects.count(),
        SignupRecord.objects.count(),
        TermsAcceptance.objects.count(),
    )


def _expire(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


# --- invitation_create -----------------------------------------------------------------------------------------


def test_invitation_create_stores_a_pending_member_invitation_that_expires_in_seven_days(owner, organization):
    before = timezone.now()

    invitation, _ = invitation_create(organization=organization, email="Ada.Lovelace@Example.COM", invited_by=owner)

    invitation.refresh_from_db()
    assert invitation.organization == organization
    assert invitation.email == "Ada.Lovelace@example.com"
    assert invitation.email_canonical == "ada.lovelace@example.com"
    assert invitation.role == Role.MEMBER
    assert invitation.invited_by == owner
    assert before <= invitation.created_at <= timezone.now()
    assert invitation.expires_at == invitation.created_at + timedelta(days=7)
    assert invitation.accepted_at is None
    assert invitation.revoked_at is None


def test_invitation_create_stores_only_the_sha256_of_the_token(owner, organization):
    invitation, token = invitation_create(organization=organization, email="new@example.com", invited_by=owner)

    assert len(token) >= 43
    row = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in str(value) for value in row.values())


def test_invitation_create_emails_one_link_to_the_invitee_after_commit(
    owner, organization, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://portal.moat.example"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _, token = invitation_create(organization=organization, email="new@example.com", invited_by=owner)
        assert mail.outbox == []

    assert len(callbacks) == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new@example.com"]
    assert message.subject == f"You're invited to join {organization.name} on Moat"
    assert invitation_url_in(message.body) == f"https://portal.moat.example/invitations/{token}/"
    assert "owner@example.com invited you" in message.body


def test_invitation_create_by_a_member_is_refused_and_creates_nothing(organization):
    plain_member = member(organization=organization, role=Role.MEMBER)

    with pytest.raises(OwnerRequiredError) as caught:
        invitation_create(organization=organization, email="new@example.com", invited_by=plain_member)

    assert isinstance(caught.value, PermissionDeniedError)
    assert Invitation.objects.count() == 0


def test_invitation_create_by_the_owner_of_another_organization_is_refused(organization, other_owner):
    with pytest.raises(OwnerRequiredError):
        invitation_create(organization=organization, email="new@example.com", invited_by=other_owner)

    assert Invitation.objects.count() == 0


def test_invitation_create_by_an_owner_with_an_unverified_email_is_refused_and_sends_nothing(
    organization, django_capture_on_commit_callbacks
):
    unverified = member(organization=organization, email_verified_at=None)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvitationError) as caught:
        invitation_create(organization=organization, email="new@example.com", invited_by=unverified)

    assert caught.value.message == UNVERIFIED_INVITER
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def _fill_pending(organization, owner) -> list[Invitation]:
    return [
        invitation_create(organization=organization, email=f"invitee{n}@example.com", invited_by=owner)[0]
        for n in range(MAX_PENDING_INVITATIONS)
    ]


def test_invitation_create_beyond_20_pending_invitations_is_refused_and_sends_nothing(
    owner, organization, django_capture_on_commit_callbacks
):
    _fill_pending(organization, owner)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvitationError) as caught:
        invitation_create(organization=organization, email="one-too-many@example.com", invited_by=owner)

    assert MAX_PENDING_INVITATIONS == 20
    assert caught.value.message == TOO_MANY_PENDING
    assert Invitation.objects.count() == 20
    assert mail.outbox == []


@pytest.mark.parametrize(
    "settle",
    [
        lambda invitation: _expire(invitation),
        lambda invitation: Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now()),
        lambda invitation: Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now()),
    ],
    ids=["expired", "revoked", "accepted"],
)
def test_invitations_that_are_no_longer_usable_do_not_count_against_the_cap(owner, organization, settle):
    first, *_ = _fill_pending(organization, owner)
    settle(first)

    invitation, _ = invitation_create(organization=organization, email="next@example.com", invited_by=owner)

    assert invitation.is_pending


def test_the_cap_on_pending_invitations_is_per_organization(owner, organization, other_owner):
    _fill_pending(organization, owner)

    invitation, _ = invitation_create(
        organization=other_owner.membership.organization, email="new@example.com", invited_by=other_owner
    )

    assert invitation.organization == other_owner.membership.organization


@pytest.mark.django_db(transaction=True)
def test_concurrent_invitations_never_exceed_the_cap(owner, organization):
    """An invite waits for a concurrent one of the same organization to commit, then counts it."""
    for n in range(MAX_PENDING_INVITATIONS - 1):
        invitation_create(organization=organization, email=f"invitee{n}@example.com", invited_by=owner)
    blocked, errors = second_waits_for_first(
        lambda: invitation_create(organization=organization, email="a@example.com", invited_by=owner),
        lambda: invitation_create(organization=organization, email="b@example.com", invited_by=owner),
    )

    assert blocked, "the second invitation did not wait for the first"
    assert [(type(error), error.message) for error in errors] == [(InvitationError, TOO_MANY_PENDING)]
    assert Invitation.objects.filter(organization=organization).count() == MAX_PENDING_INVITATIONS
    assert Invitation.objects.filter(email="a@example.com").exists()


@pytest.mark.parametrize("email", OVERLONG_IDN_ADDRESSES, ids=["overlong-domain", "overlong-canonical"])
def test_invitation_create_refuses_an_idn_address_too_long_once_encoded(owner, organization, email):
    with pytest.raises(InvitationError) as caught:
        invitation_create(organization=organization, email=email, invited_by=owner)

    assert caught.value.message == "Enter a valid email address."
    assert Invitation.objects.count() == 0


def test_invitation_create_refuses_a_disposable_domain(owner, organization):
    with pytest.raises(InvitationError) as caught:
        invitation_create(organization=organization, email="throwaway@mailinator.com", invited_by=owner)

    assert caught.value.message == DISPOSABLE
    assert Invitation.objects.count() == 0


def test_invitation_create_refuses_a_mailbox_that_already_has_an_account_in_any_spelling(owner, organization):
    UserFactory(email="johndoe@gmail.com")

    with pytest.raises(InvitationError) as caught:
        invitation_create(organization=organization, email="John.Doe+team@googlemail.com", invited_by=owner)

    assert caught.value.message == ACCOUNT_EXISTS
    assert Invitation.objects.count() == 0


def test_invitation_create_refuses_a_second_pending_invitation_of_the_same_mailbox(owner, organization):
    first, _ = invitation_create(organization=organization, email="johndoe@gmail.com", invited_by=owner)

    with pytest.raises(InvitationError) as caught:
        invitation_create(organization=organization, email="John.Doe@gmail.com", invited_by=owner)

    assert caught.value.message == ALREADY_INVITED
    assert list(Invitation.objects.all()) == [first]


def test_invitation_create_allows_the_same_mailbox_to_be_invited_by_another_organization(
    owner, organization, other_owner
):
    invitation_create(organization=organization, email="new@example.com", invited_by=owner)

    theirs, _ = invitation_create(
        organization=other_owner.membership.organization, email="new@example.com", invited_by=other_owner
    )

    assert Invitation.objects.count() == 2
    assert theirs.organization == other_owner.membership.organization


def test_invitation_create_after_a_revocation_invites_the_mailbox_again(owner, organization):
    first, _ = invitation_create(organization=organization, email="new@example.com", invited_by=owner)
    invitation_revoke(invitation=first, actor=owner)

    second, _ = invitation_create(organization=organization, email="new@example.com", invited_by=owner)

    assert list(invitation_list_pending_for_org(organization_id=organization.pk)) == [second]


def test_invitation_create_replaces_an_expired_pending_invitation_of_the_mailbox(owner, organization):
    lapsed, _ = invitation_create(organization=organization, email="new@example.com", invited_by=owner)
    _expire(lapsed)

    fresh, _ = invitation_create(organization=organization, email="new@example.com", invited_by=owner)

    lapsed.refresh_from_db()
    assert lapsed.revoked_at is not None
    assert list(invitation_list_pending_for_org(organization_id=organization.pk)) == [fresh]


# --- invitation_email_send and its task ------------------------------------------------------------------------


def test_send_invitation_email_sends_nothing_for_a_revoked_invitation(owner, organization):
    invitation, token = invite(organization)
    invitation_revoke(invitation=invitation, actor=owner)

    assert send_invitation_email.delay(invitation.pk, token).get() is False
    assert mail.outbox == []


def test_invitation_email_send_sends_nothing_for_a_token_that_is_not_the_invitations(organization):
    invitation, _ = invite(organization)

    assert invitation_email_send(invitation_id=invitation.pk, token="forged-token") is False
    assert mail.outbox == []


def test_invitation_email_send_sends_nothing_for_a_missing_invitation(db):
    assert invitation_email_send(invitation_id=424242, token="anything") is False
    assert mail.outbox == []


def test_send_invitation_email_is_registered_under_its_stable_name():
    assert send_invitation_email.name == "accounts.send_invitation_email"


# --- invitation_revoke -----------------------------------------------------------------------------------------


def test_invitation_revoke_withdraws_a_pending_invitation_once(owner, organization):
    invitation, _ = invite(organization)

    assert invitation_revoke(invitation=invitation, actor=owner) is True
    revoked_at = Invitation.objects.get().revoked_at
    assert revoked_at is not None
    assert invitation_revoke(invitation=invitation, actor=owner) is False
    assert Invitation.objects.get().revoked_at == revoked_at
    assert list(invitation_list_pending_for_org(organization_id=organization.pk)) == []


def test_invitation_revoke_by_a_member_is_refused_and_changes_nothing(organization):
    invitation, _ = invite(organization)
    plain_member = member(organization=organization, role=Role.MEMBER)

    with pytest.raises(OwnerRequiredError):
        invitation_revoke(invitation=invitation, actor=plain_member)

    assert Invitation.objects.get().revoked_at is None


def test_invitation_revoke_leaves_an_accepted_invitation_accepted(owner, organization):
    invitation, token = invite(organization)
    _accept(token)

    assert invitation_revoke(invitation=invitation, actor=owner) is False
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert invitation.revoked_at is None


# --- invitation_accept -----------------------------------------------------------------------------------------


def test_invitation_accept_creates_a_verified_member_of_the_inviting_organization(organization):
    invitation, token = invite(organization, email="Ada.Lovelace@Example.com")

    user = _accept(token)

    user.refresh_from_db()
    assert user.email == "Ada.Lovelace@example.com"
    assert user.check_password(SIGNUP_PASSWORD)
    assert user.email_verified_at is not None
    assert user.is_active is True
    assert user.membership.organization == organization
    assert user.membership.role == Role.MEMBER
    invitation.refresh_from_db()
    assert invitation.accepted_at == user.email_verified_at


def test_invitation_accept_records_the_signup_ip_user_agent_and_terms_acceptance(organization):
    _, token = invite(organization, email="ada@example.com")

    user = _accept(token, ip_address="198.51.100.23", user_agent="Mozilla/5.0 (Invite)")

    record = SignupRecord.objects.get(user=user)
    assert record.organization == organization
    assert record.ip_address == "198.51.100.23"
    assert record.user_agent == "Mozilla/5.0 (Invite)"
    assert record.email == "ada@example.com"
    assert record.email_domain == "example.com"
    acceptance = TermsAcceptance.objects.get(user=user)
    assert acceptance.terms == terms_current()
    assert acceptance.ip_address == "198.51.100.23"
    assert acceptance.user_agent == "Mozilla/5.0 (Invite)"


def test_invitation_accept_twice_creates_one_user_and_refuses_the_second(organization):
    _, token = invite(organization)
    first = _accept(token)
    counts = _counts()

    with pytest.raises(InvitationTokenError) as caught:
        _accept(token, password="another-long-password-9")

    assert caught.value.message == "This invitation has already been accepted. Sign in instead."
    assert _counts() == counts
    assert list(User.objects.filter(email="new.member@example.com")) == [first]


def test_invitation_accept_that_loses_the_race_for_the_invitation_creates_nothing(organization, monkeypatch):
    invitation, token = invite(organization)
    stale = Invitation.objects.select_related("organization").get(pk=invitation.pk)  # read before the other accept
    _accept(token)
    counts = _counts()
    monkeypatch.setattr("accounts.services.invitation_get_usable_by_token", lambda token: stale)

    with pytest.raises(InvitationTokenError) as caught:
        _accept(token)

    assert caught.value.message == "This invitation is no longer valid."
    assert _counts() == counts


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_expire, "This invitation has expired. Ask the person who invited you for a new one."),
        (
            lambda invitation: Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now()),
            "This invitation was withdrawn. Ask the person who invited you for a new one.",
        ),
    ],
    ids=["expired", "revoked"],
)
def test_invitation_accept_refuses_an_unusable_invitation_and_creates_nothing(organization, spoil, message):
    invitation, token = invite(organization)
    spoil(invitation)
    counts = _counts()

    with pytest.raises(InvitationTokenError) as caught:
        _accept(token)

    assert caught.value.message == message
    assert _counts() == counts
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.parametrize("tamper", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: "", lambda t: "x"])
def test_invitation_accept_refuses_a_tampered_token(organization, tamper):
    _, token = invite(organization)
    counts = _counts()

    with pytest.raises(InvitationTokenError) as caught:
        _accept(tamper(token))

    assert caught.value.message == NOT_VALID
    assert _counts() == counts


def test_invitation_accept_refuses_a_mailbox_that_got_an_account_since_and_leaves_the_invitation_pending(
    organization,
):
    _, token = invite(organization, email="johndoe@gmail.com")
    UserFactory(email="john.doe@gmail.com")
    counts = _counts()

    with pytest.raises(InvitationTokenError) as caught:
        _accept(token)

    assert caught.value.message == "An account already exists for this email address. Sign in instead."
    assert _counts() == counts
    assert Invitation.objects.get().accepted_at is None


# --- selectors -------------------------------------------------------------------------------------------------


def test_invitation_get_for_org_finds_only_the_organizations_invitations(organization, other_owner):
    mine, _ = invite(organization)
    theirs, _ = invite(other_owner.membership.organization)

    assert invitation_get_for_org(organization_id=organization.pk, invitation_id=mine.pk) == mine
    with pytest.raises(NotFoundError):
        invitation_get_for_org(organization_id=organization.pk, invitation_id=theirs.pk)
    with pytest.raises(NotFoundError):
        invitation_get_for_org(organization_id=organization.pk, invitation_id=424242)


def test_invitation_list_pending_for_org_leaves_out_accepted_revoked_and_other_organizations(
    owner, organization, other_owner
):
    _, accepted_token = invite(organization, email="accepted@example.com")
    _accept(accepted_token)
    revoked, _ = invite(organization, email="revoked@example.com")
    invitation_revoke(invitation=revoked, actor=owner)
    pending, _ = invite(organization, email="pending@example.com")
    invite(other_owner.membership.organization, email="theirs@example.com")

    assert list(invitation_list_pending_for_org(organization_id=organization.pk)) == [pending]


def test_membership_get_for_org_finds_only_the_organizations_members(owner, organization, other_owner):
    assert membership_get_for_org(organization_id=organization.pk, membership_id=owner.membership.pk) == (
        owner.membership
    )
    with pytest.raises(NotFoundError):
        membership_get_for_org(organization_id=organization.pk, membership_id=other_owner.membership.pk)
