from core.errors import ApplicationError, PermissionDeniedError


class SignupError(ApplicationError):
    """Sign-up refused; `field` names the form field the message belongs to."""

    code = "signup_refused"

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class VerificationTokenError(ApplicationError):
    code = "invalid_verification_link"


class OwnerRequiredError(PermissionDeniedError):
    """Only an owner of the organization may do this (invite, revoke an invitation, remove a member)."""

    code = "owner_required"


class InvitationError(ApplicationError):
    """An invitation refused: the address is disposable, already has an account, or is already invited."""

    code = "invitation_refused"


class InvitationTokenError(ApplicationError):
    """An invitation link that cannot be used: unknown, accepted, revoked or expired."""

    code = "invalid_invitation_link"


class MembershipError(ApplicationError):
    """A membership change refused, e.g. an owner removing themselves or the last owner."""

    code = "membership_change_refused"
