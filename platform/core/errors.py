"""The one base class for domain errors; views map it to a form error or a JSON error once."""


class ApplicationError(Exception):
    """A rule of the domain was broken. `code` is stable and machine-readable; `message` is for people."""

    code = "application_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFoundError(ApplicationError):
    """Missing and not-yours are the same error, so tenants cannot probe each other's ids."""

    code = "not_found"
    status = 404


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    status = 403
