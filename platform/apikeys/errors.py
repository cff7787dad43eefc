from core.errors import ApplicationError


class EmailNotVerifiedError(ApplicationError):
    code = "email_not_verified"
    status = 403


class KeyNotActiveError(ApplicationError):
    code = "key_not_active"
    status = 409


class InvalidApiKeyError(ApplicationError):
    code = "invalid_api_key"
    status = 401


class KeyFrozenError(ApplicationError):
    code = "key_frozen"
    status = 403


class TermsNotAcceptedError(ApplicationError):
    code = "terms_not_accepted"
    status = 403


class OrganizationFrozenError(ApplicationError):
    code = "organization_frozen"
    status = 403
