from core.errors import ApplicationError


class SpendCapInvalidError(ApplicationError):
    """A spend cap that is not a positive amount of dollars."""

    code = "spend_cap_invalid"
