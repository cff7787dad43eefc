"""One exception per error code of the Moat API, all of them `MoatError`s carrying the answer's status, code,
message, request id and (for 429 and 503) how long the server asked to wait."""

from __future__ import annotations


class MoatError(Exception):
    """An error answer of the API (or, with status 0, no answer at all)."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        # The predictions of the batches answered before this error (`Moat.predict` splits long lists): paid for,
        # so never lost.
        self.partial_predictions: list = []

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.status else self.message


class ConnectionFailedError(MoatError):
    """The server could not be reached, or did not answer in time (no status)."""

    code = "connection_failed"


class InvalidInputError(MoatError):
    code = "invalid_input"


class InvalidApiKeyError(MoatError):
    code = "invalid_api_key"


class KeyFrozenError(MoatError):
    code = "key_frozen"


class TermsNotAcceptedError(MoatError):
    code = "terms_not_accepted"


class SpendCapReachedError(MoatError):
    code = "spend_cap_reached"


class ModelNotFoundError(MoatError):
    code = "model_not_found"


class MethodNotAllowedError(MoatError):
    code = "method_not_allowed"


class PayloadTooLargeError(MoatError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(MoatError):
    code = "unsupported_media_type"


class RateLimitedError(MoatError):
    code = "rate_limited"


class ServiceUnavailableError(MoatError):
    code = "service_unavailable"


class NotFoundError(MoatError):
    code = "not_found"


ERRORS_BY_CODE: dict[str, type[MoatError]] = {
    error.code: error
    for error in (
        InvalidInputError, InvalidApiKeyError, KeyFrozenError, TermsNotAcceptedError, SpendCapReachedError,
        ModelNotFoundError, MethodNotAllowedError, PayloadTooLargeError, UnsupportedMediaTypeError,
        RateLimitedError, ServiceUnavailableError, NotFoundError,
    )
}  # fmt: skip
