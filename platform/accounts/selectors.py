"""Reads of accounts, scoped to the signed-in person's organization."""

from django.db.models import QuerySet

from accounts.errors import InvitationTokenError
from accounts.models import Invitation, Membership, Organization, Role, User, invitation_token_hash
from core.errors import NotFoundError


def membership_for_user(*, user: User) -> Membership | None:
    """The user's membership with the organization and tier loaded, or None (staff have none)."""
    if not user.is_authenticated:
        return None
    return Membership.objects.select_related("organization__tier").filter(user_id=user.pk).first()


def organization_members(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization).select_related("user").order_by("-role", "id")
    )  # owners first


def is_owner(*, membership: Membership | None) -> bool:
    return membership is not None and membership.role == Role.OWNER


def membership_get_for_org(*, organization_id: int, membership_id: int) -> Membership:
    """The membership, if it is in the organization. Missing and not-yours raise the same NotFoundError."""
    membership = (
        Membership.objects.select_related("user").filter(organization_id=organization_id, id=membership_id).first()
    )
    if membership is None:
        raise NotFoundError("No such member.")
    return membership


def invitation_list_pending_for_org(*, organization_id: int) -> QuerySet[Invitation]:
    """The organization's invitations that are neither accepted nor revoked, newest first; expired ones included
    (the page marks them) so an owner sees that an invitation lapsed."""
    return Invitation.objects.filter(
        organization_id=organization_id, accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def invitation_get_for_org(*, organization_id: int, invitation_id: int) -> Invitation:
    """The invitation, if it belongs to the organization. Missing and not-yours raise the same NotFoundError."""
    invitation = Invitation.objects.filter(organization_id=organization_id, id=invitation_id).first()
    if invitation is None:
        raise NotFoundError("No such invitation.")
    return invitation


def invitation_get_usable_by_token(*, token: str) -> Invitation:
    """The pending, unexpired invitation the emailed token belongs to, with its organization loaded.
    Raises InvitationTokenError saying why the link cannot be used (unknown, accepted, revoked or expired)."""
    invitation = (
        Invitation.objects.select_related("organization").filter(token_hash=invitation_token_hash(token)).first()
    )
    if invitation is None:
        raise InvitationTokenError("This invitation link is not valid.")
    if invitation.accepted_at is not None:
        raise InvitationTokenError("This invitation has already been accepted. Sign in instead.")
    if invitation.revoked_at is not None:
        raise InvitationTokenError("This invitation was withdrawn. Ask the person who invited you for a new one.")
    if invitation.is_expired():
        raise InvitationTokenError("This invitation has expired. Ask the person who invited you for a new one.")
    return invitation
