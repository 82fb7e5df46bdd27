"""Access and refresh tokens of the fake: real JWTs, checked the way Oakestra's routes check them.

Oakestra's `jwt_generator` signs RS256 tokens with a key pair made at its start; the fake signs
HS256 with a random key per `FakeOakestra`, so tokens of another fake (or a restarted one) are
rejected, as after a real `jwt_generator` restart. The claims are those of flask-jwt-extended
plus Oakestra's: `sub`, `user`, `roles`, `organization`, `iat`, `nbf`, `exp`, `jti`, `type`,
`fresh`.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
import uuid
from typing import Any, Literal

import jwt

__all__ = ["REFRESH_LIFETIME_S", "TokenError", "TokenIssuer"]

REFRESH_LIFETIME_S = 30 * 24 * 3600.0
"""flask-jwt-extended's default, which Oakestra's `jwt_generator` does not change."""

TokenType = Literal["access", "refresh"]
_BEARER = "Bearer "


class TokenError(Exception):
    """Raised when a request carries no usable token; `status` and `message` as Flask-JWT says.

    flask-jwt-extended (Oakestra's `@jwt_required` routes) answers 401 for a missing header or
    an expired token and 422 for a token it cannot decode or of the wrong type.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenIssuer:
    """Issues and verifies the fake's tokens; thread-safe.

    Parameters
    ----------
    access_lifetime_s : float
        Seconds an access token is valid (Oakestra: 600).
    """

    def __init__(self, access_lifetime_s: float) -> None:
        self._key = secrets.token_bytes(32)
        self._access_lifetime_s = access_lifetime_s
        self._lock = threading.Lock()
        self._issued_access: set[str] = set()
        self._expired: set[str] = set()

    def issue(self, kind: TokenType, *, username: str, roles: list[str], organization: str) -> str:
        """Return a new signed token for `username`."""
        now = time.time()
        lifetime = self._access_lifetime_s if kind == "access" else REFRESH_LIFETIME_S
        jti = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "fresh": False,
            "iat": int(now),
            "jti": jti,
            "type": kind,
            "sub": username,
            "nbf": int(now),
            "exp": math.ceil(now + lifetime),  # PyJWT (like Oakestra) checks whole seconds
            "user": username,
            "roles": list(roles),
            "organization": organization,
        }
        if kind == "access":
            with self._lock:
                self._issued_access.add(jti)
        return jwt.encode(claims, self._key, algorithm="HS256")

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired."""
        with self._lock:
            self._expired |= self._issued_access

    def verify(self, authorization: str | None, kind: TokenType) -> dict[str, Any]:
        """Return the claims of the bearer token in an `Authorization` header value.

        Raises
        ------
        TokenError
            With flask-jwt-extended's status and message for the failure.
        """
        if not authorization:
            raise TokenError(401, "Missing Authorization Header")
        if not authorization.startswith(_BEARER):
            raise TokenError(
                401,
                "Missing 'Bearer' type in 'Authorization' header. "
                "Expected 'Authorization: Bearer <JWT>'",
            )
        token = authorization[len(_BEARER) :].strip()
        try:
            claims: dict[str, Any] = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as e:
            raise TokenError(401, "Token has expired") from e
        except jwt.InvalidTokenError as e:
            raise TokenError(422, str(e)) from e
        with self._lock:
            expired = claims.get("jti") in self._expired
        if expired:
            raise TokenError(401, "Token has expired")
        if claims.get("type") != kind:
            wanted = "non-refresh" if kind == "access" else "refresh"
            raise TokenError(422, f"Only {wanted} tokens are allowed")
        return claims
