"""The official Python client of the Moat prediction API.

from moat_client import Moat

moat = Moat(api_key="moat_live_...", base_url="https://api.example.com")
for prediction in moat.predict("digits", rows):
    print(prediction.label, prediction.confidence)
"""

from moat_client.client import Moat
from moat_client.errors import (
    ConnectionFailedError,
    InvalidApiKeyError,
    InvalidInputError,
    KeyFrozenError,
    MethodNotAllowedError,
    MoatError,
    ModelNotFoundError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServiceUnavailableError,
    SpendCapReachedError,
    TermsNotAcceptedError,
    UnsupportedMediaTypeError,
)
from moat_client.types import Model, Prediction, Usage

__all__ = [
    "ConnectionFailedError",
    "InvalidApiKeyError",
    "InvalidInputError",
    "KeyFrozenError",
    "MethodNotAllowedError",
    "Moat",
    "MoatError",
    "Model",
    "ModelNotFoundError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Prediction",
    "RateLimitedError",
    "ServiceUnavailableError",
    "SpendCapReachedError",
    "TermsNotAcceptedError",
    "UnsupportedMediaTypeError",
    "Usage",
]
