"""API tokens: made of `secrets.token_urlsafe`, stored as SHA-256 digests only. A token starts
with `ogp_` and its first PREFIX_CHARS characters are kept in the clear, so a request's token
finds its row without a scan and a user can tell their tokens apart in the admin. Pure: no
Django, so it is tested with plain data."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "ogp_"
PREFIX_CHARS = 12  # "ogp_" and 8 random characters: 48 bits, enough to find one row


def new_token() -> str:
    return SCHEME + secrets.token_urlsafe(32)


def prefix_of(token: str) -> str:
    return token[:PREFIX_CHARS]


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, digest: str) -> bool:
    """Whether `token` is the one `digest` was made from, in constant time."""
    return hmac.compare_digest(digest_of(token), digest)


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None for any other form."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(SCHEME) or len(token) > 200:
        return None
    return token
