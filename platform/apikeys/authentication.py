"""Reading the caller's key from the request. The key's state is checked by apikeys.cache.apikey_context."""


def bearer_token(authorization_header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
