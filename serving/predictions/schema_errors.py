"""The error responses of the OpenAPI document, one description per status, shared by /v1's and /v2's routes (each
points at its own error shape)."""


def error_responses(*statuses: int, schema: dict) -> dict:
    descriptions = {
        400: "invalid_input: wrong shape, NaN or infinity, out-of-range values, non-numbers, an empty or too large "
        "batch, an undecodable image, or a key sent in the URL",
        401: "invalid_api_key: missing, malformed, unknown, revoked or expired key",
        403: "key_frozen, or terms_not_accepted",
        404: "model_not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        402: "spend_cap_reached: the organization's monthly spend cap is reached",
        415: "unsupported_media_type: the body must be application/json",
        429: "rate_limited (with Retry-After and X-RateLimit-* headers)",
        503: "service_unavailable (with Retry-After)",
    }
    return {
        str(status): {"description": descriptions[status], "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }
