"""API tokens: generated at random, stored only as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["TOKEN_PREFIX", "generate_token", "hash_token", "tokens_match"]

TOKEN_PREFIX = "flops_"


def generate_token() -> str:
    """Return a new random bearer token (256 bits of entropy)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored in place of `token`.

    A fast hash is enough here: tokens are random with 256 bits of entropy, so they cannot be
    guessed from their hash the way a human-chosen password could.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(token: str, expected: str) -> bool:
    """Compare two tokens in constant time."""
    return hmac.compare_digest(token.encode(), expected.encode())
