"""Errors of the prediction API; each maps to one status and one stable code."""

from core.errors import ApplicationError


class InvalidInputError(ApplicationError):
    code = "invalid_input"
    status = 400


class PayloadTooLargeError(ApplicationError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaTypeError(ApplicationError):
    code = "unsupported_media_type"
    status = 415


class ModelNotFoundError(ApplicationError):
    code = "model_not_found"
    status = 404


class MethodNotAllowedError(ApplicationError):
    code = "method_not_allowed"
    status = 405


class ServiceUnavailableError(ApplicationError):
    code = "service_unavailable"
    status = 503


class RateLimitedError(ApplicationError):
    code = "rate_limited"
    status = 429


class SpendCapReachedError(ApplicationError):
    code = "spend_cap_reached"
    status = 402
