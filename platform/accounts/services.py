"""Writes of accounts: sign-up, email verification, operator-created accounts, invitations and members."""

import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.emails import canonical_email, email_domain, is_disposable_domain
from accounts.errors import (
    InvitationError,
    InvitationTokenError,
    MembershipError,
    OwnerRequiredError,
    SignupError,
    VerificationTokenError,
)
from accounts.models import (
    INVITATION_MAX_AGE,
    Invitation,
    Membership,
    Organization,
    Role,
    SignupRecord,
    User,
    invitation_token_hash,
)
from accounts.selectors import invitation_get_usable_by_token, membership_get_for_org
from legal.selectors import terms_current
from legal.services import terms_accept
from tiers.selectors import DEFAULT_SIGNUP_TIER, tier_get

_VERIFY_SALT = "accounts.email-verification"


def email_check_allowed(*, email: str) -> None:
    """Raise SignupError unless the address may hold an account (not disposable, mailbox not taken)."""
    if is_disposable_domain(email_domain(email)):
        raise SignupError(
            "Addresses from disposable email providers can't be used. Please use a permanent address.",
            field="email",
            code="disposable_email",
        )
    if User.objects.filter(email_canonical=canonical_email(email)).exists():
        raise SignupError(
            "An account already exists for this email address. Sign in instead.", field="email", code="account_exists"
        )


def _create_owner(*, email: str, password: str | None, organization_name: str, tier_code: str) -> User:
    organization_name = organization_name.strip()
    max_length = Organization._meta.get_field("name").max_length
    if not organization_name or len(organization_name) > max_length:
        raise SignupError(f"The organization name must be 1 to {max_length} characters.", field="organization")
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
    except IntegrityError as exc:  # the unique canonical email, raced by a concurrent sign-up
        raise SignupError("An account already exists for this email address. Sign in instead.", field="email") from exc
    organization = Organization.objects.create(name=organization_name, tier=tier_get(code=tier_code))
    Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    return user


def _record_signup(*, user: User, organization: Organization, ip_address: str | None, user_agent: str) -> None:
    """The sign-up evidence the abuse jobs read, and the acceptance of the current Terms."""
    SignupRecord.objects.create(
        user=user,
        organization=organization,
        ip_address=ip_address,
        user_agent=user_agent,
        email=user.email,
        email_canonical=user.email_canonical,
        email_domain=email_domain(user.email),
    )
    terms = terms_current()
    if terms is not None:
        terms_accept(user_id=user.pk, terms=terms, ip_address=ip_address, user_agent=user_agent)


@transaction.atomic
def user_signup(*, email: str, password: str, organization_name: str, ip_address: str | None, user_agent: str) -> User:
    """Create a user, their organization on the free tier and its owner membership; record the sign-up's IP,
    user agent and time, and the acceptance of the current Terms; email a verification link after commit.
    The caller has validated the password and the Terms checkbox."""
    email_check_allowed(email=email)
    user = _create_owner(
        email=email, password=password, organization_name=organization_name, tier_code=DEFAULT_SIGNUP_TIER
    )
    _record_signup(user=user, organization=user.membership.organization, ip_address=ip_address, user_agent=user_agent)
    from accounts.tasks import send_verification_email

    transaction.on_commit(lambda: send_verification_email.delay(user.pk))
    return user


def email_verification_token(*, user: User) -> str:
    """A signed, expiring token bound to the user and the address it was sent to."""
    return signing.dumps({"u": user.pk, "e": user.email_canonical}, salt=_VERIFY_SALT)


def email_verification_send(*, user_id: int) -> bool:
    """Email the verification link. Returns False (and sends nothing) if the user is gone or already verified."""
    user = User.objects.filter(pk=user_id, email_verified_at__isnull=True, is_active=True).first()
    if user is None:
        return False
    url = settings.SITE_URL + reverse("accounts:verify_email", args=[email_verification_token(user=user)])
    context = {"user": user, "url": url, "max_age_days": settings.EMAIL_VERIFICATION_MAX_AGE.days}
    send_mail(
        subject="Verify your email address for Moat",
        message=render_to_string("accounts/email/verify_email.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
    return True


@transaction.atomic
def email_verify(*, token: str) -> User:
    """Mark the address the token was issued for as verified. Verifying twice is harmless."""
    try:
        payload = signing.loads(token, salt=_VERIFY_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE.total_seconds())
    except signing.SignatureExpired as exc:
        raise VerificationTokenError("This verification link has expired. Sign in to get a new one.") from exc
    except signing.BadSignature as exc:
        raise VerificationTokenError("This verification link is not valid.") from exc
    user = User.objects.select_for_update().filter(pk=payload.get("u"), email_canonical=payload.get("e")).first()
    if user is None:
        raise VerificationTokenError("This verification link is not valid.")
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at", "email_canonical"])
    return user


@dataclass(frozen=True)
class CreatedAccount:
    user: User
    organization: Organization
    raw_key: str


@transaction.atomic
def account_create(*, email: str, tier_code: str, organization_name: str | None, accept_terms: bool) -> CreatedAccount:
    """Operator onboarding: a verified owner (no password: they set one by password reset), an organization on
    any tier, and a first API key. With `accept_terms`, the owner is recorded as accepting the current Terms
    (the operator attests a signed contract)."""
    from apikeys.services import apikey_create

    email_check_allowed(email=email)
    user = _create_owner(
        email=email,
        password=None,
        organization_name=organization_name or email[: Organization._meta.get_field("name").max_length],
        tier_code=tier_code,
    )
    user.email_verified_at = timezone.now()
    user.save(update_fields=["email_verified_at", "email_canonical"])
    if accept_terms and (terms := terms_current()) is not None:
        terms_accept(user_id=user.pk, terms=terms, ip_address=None, user_agent="create_account command")
    organization = user.membership.organization
    _, raw_key = apikey_create(organization=organization, name="Default key", created_by=None)
    return CreatedAccount(user=user, organization=organization, raw_key=raw_key)


# --- invitations and members -----------------------------------------------------------------------------------

_ACCOUNT_EXISTS_FOR_INVITE = (
    "This address already has a Moat account, and an account belongs to one organization only, so it can't be invited."
)
_ALREADY_INVITED = "There is already a pending invitation for this address. Revoke it to send a new one."
_UNVERIFIED_INVITER = "Verify your email address before inviting people."
# Each invitation sends an email: the cap bounds what one organization can make us send at a time.
MAX_PENDING_INVITATIONS = 20
_TOO_MANY_PENDING = (
    f"Your organization already has {MAX_PENDING_INVITATIONS} pending invitations, the most it can have at once. "
    "Revoke one, or wait until one is accepted or expires, to send a new one."
)


def _require_owner(*, organization_id: int, actor: User) -> None:
    if not (
        actor.is_active
        and Membership.objects.filter(organization_id=organization_id, user_id=actor.pk, role=Role.OWNER).exists()
    ):
        raise OwnerRequiredError("Only an owner of the organization can do this.")


@transaction.atomic
def invitation_create(*, organization: Organization, email: str, invited_by: User) -> tuple[Invitation, str]:
    """Invite a mailbox to join the organization as a member. Returns the invitation and its raw token; the token
    is emailed after commit and never stored (only its hash is). Only an owner may invite. Refuses (InvitationError)
    an inviter whose email address is unverified, an organization with MAX_PENDING_INVITATIONS unexpired pending
    invitations, disposable domains, mailboxes that already have an account, and a second pending invitation of
    the same mailbox to this organization. A lapsed (expired) pending invitation of the mailbox is revoked to make
    room."""
    # Invitations of one organization queue on its row, so concurrent invites count settled data against the cap.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    _require_owner(organization_id=organization.pk, actor=invited_by)
    if not invited_by.email_verified:
        raise InvitationError(_UNVERIFIED_INVITER)
    try:
        email_check_allowed(email=email)
    except SignupError as exc:
        raise InvitationError(_ACCOUNT_EXISTS_FOR_INVITE if exc.code == "account_exists" else exc.message) from exc
    except ValueError as exc:
        raise InvitationError("Enter a valid email address.") from exc
    email = User.objects.normalize_email(email.strip())
    now = timezone.now()
    pending = Invitation.objects.filter(
        organization=organization, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    )
    if pending.count() >= MAX_PENDING_INVITATIONS:
        raise InvitationError(_TOO_MANY_PENDING)
    Invitation.objects.filter(
        organization=organization,
        email_canonical=canonical_email(email),
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__lte=now,
    ).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=Role.MEMBER,
                token_hash=invitation_token_hash(token),
                invited_by=invited_by,
                created_at=now,
                expires_at=now + INVITATION_MAX_AGE,
            )
    except IntegrityError as exc:  # the one-pending-invitation-per-mailbox constraint
        raise InvitationError(_ALREADY_INVITED) from exc
    from accounts.tasks import send_invitation_email

    # The token travels to the worker as an argument (it cannot be recomputed); `argsrepr` keeps it out of the
    # task's monitoring events and logs.
    transaction.on_commit(
        lambda: send_invitation_email.apply_async(args=[invitation.pk, token], argsrepr=f"({invitation.pk}, '…')")
    )
    return invitation, token


def invitation_email_send(*, invitation_id: int, token: str) -> bool:
    """Email the invitation link. Returns False (and sends nothing) unless the invitation is still pending and
    unexpired and the token is its own."""
    invitation = (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if invitation is None or not hmac.compare_digest(invitation.token_hash, invitation_token_hash(token)):
        return False
    organization_name = " ".join(invitation.organization.name.split())  # no line breaks in a mail header
    context = {
        "invitation": invitation,
        "organization_name": organization_name,
        "inviter": invitation.invited_by.email if invitation.invited_by else None,
        "url": settings.SITE_URL + reverse("accounts:invitation_accept", args=[token]),
        "max_age_days": INVITATION_MAX_AGE.days,
    }
    send_mail(
        subject=f"You're invited to join {organization_name} on Moat",
        message=render_to_string("accounts/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )
    return True


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> bool:
    """Withdraw a pending invitation so its link stops working. Only an owner of its organization may. Revocation
    is a state, not a delete; revoking an invitation that is no longer pending is a no-op (returns False)."""
    _require_owner(organization_id=invitation.organization_id, actor=actor)
    return bool(
        Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


@transaction.atomic
def invitation_accept(*, token: str, password: str, ip_address: str | None, user_agent: str) -> User:
    """Turn a pending, unexpired invitation into an account: a user with the invited address, verified (the link
    proves the mailbox), a member of the invitation's organization; record the sign-up's IP and user agent and the
    acceptance of the current Terms. Raises InvitationTokenError for an unusable link; of two concurrent accepts of
    one invitation only one succeeds. The caller has validated the password and the Terms checkbox."""
    invitation = invitation_get_usable_by_token(token=token)
    now = timezone.now()
    # Claim the invitation with a conditional UPDATE: a concurrent accept blocks on the row, then matches nothing.
    claimed = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).update(accepted_at=now)
    if claimed != 1:
        raise InvitationTokenError("This invitation is no longer valid.")
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=invitation.email, password=password, email_verified_at=now)
    except IntegrityError as exc:  # the mailbox got an account since the invitation was sent
        raise InvitationTokenError("An account already exists for this email address. Sign in instead.") from exc
    Membership.objects.create(organization=invitation.organization, user=user, role=invitation.role)
    _record_signup(user=user, organization=invitation.organization, ip_address=ip_address, user_agent=user_agent)
    return user


@transaction.atomic
def membership_remove(*, organization: Organization, membership_id: int, actor: User) -> User:
    """Remove a member: delete their membership and deactivate their account, which belonged to this organization
    only (their sessions stop working: Django refuses inactive users on every request). The user row stays, with
    its sign-up evidence. Only an owner may remove; nobody can remove themselves or the last owner. A membership of
    another organization raises NotFoundError. Returns the deactivated user."""
    # Membership changes of one organization queue on its row, so concurrent removals decide on settled data.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    _require_owner(organization_id=organization.pk, actor=actor)
    target = membership_get_for_org(organization_id=organization.pk, membership_id=membership_id)
    if target.user_id == actor.pk:
        raise MembershipError("You can't remove yourself from the organization.")
    # Implied today (the actor is another owner), kept so the invariant survives a new kind of actor (e.g. staff).
    other_owners = Membership.objects.filter(organization_id=organization.pk, role=Role.OWNER).exclude(pk=target.pk)
    if target.role == Role.OWNER and not other_owners.exists():
        raise MembershipError("The last owner of an organization can't be removed.")
    user = target.user
    target.delete()
    User.objects.filter(pk=user.pk).update(is_active=False)
    user.is_active = False
    return user
