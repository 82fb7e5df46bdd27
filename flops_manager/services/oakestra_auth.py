"""Oakestra access tokens as FLOps credentials: read the JWT's claims, confirm it with the root.

What `oak addon flops` sends the manager is the caller's Oakestra access token (an RS256 JWT
from `POST /api/auth/login`; claims `sub` = username, `roles`, `exp`; lifetime 10 minutes).
The manager does not hold Oakestra's signing key (jwt-generator makes a new one at every
start), so it reads the claims without checking the signature, rejects what is plainly
unusable (not a JWT, no user, expired, a refresh token) locally, and then asks the Oakestra
root itself: `GET /api/user/<sub>` with that token answers 200 only for a valid token of that
very user. A confirmed token is remembered, by its SHA-256 and never in clear, until it
expires or for `cache_ttl_s`, whichever comes first, so that a burst of CLI calls costs one
round trip; a failure is never remembered.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from flops_core.errors import FlopsError, TemporaryError
from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_manager.core.config import Settings
from flops_manager.orchestrators.oakestra_client import decode, error_text
from flops_manager.services.tokens import ADMIN_CUSTOMER_ID, CUSTOMER_ID_PATTERN, Caller

__all__ = [
    "ADMIN_ROLE",
    "InvalidOakestraTokenError",
    "OakestraAuthError",
    "OakestraTokenVerifier",
    "OakestraUnavailableError",
    "OakestraUserNotAllowedError",
    "looks_like_jwt",
]

_log = get_logger("manager.api.oakestra_auth")

#: The Oakestra role that makes a user a FLOps admin.
ADMIN_ROLE = "Admin"
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
# Statuses with which Oakestra says "this token is not good (for this user)".
_REJECTED = frozenset({400, 401, 403, 404, 422})


class OakestraAuthError(FlopsError):
    """Base of the errors of checking an Oakestra token; every message is safe to show."""


class InvalidOakestraTokenError(OakestraAuthError):
    """Raised when a token is not a usable Oakestra access token or Oakestra rejects it; permanent.

    Parameters
    ----------
    reason : str
        Why, in words for the caller; it never contains the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid Oakestra token: {reason}")
        self.reason = reason


class OakestraUserNotAllowedError(OakestraAuthError):
    """Raised when a valid Oakestra user cannot act as a FLOps customer (its name); permanent."""


class OakestraUnavailableError(OakestraAuthError, TemporaryError):
    """Raised when the Oakestra root cannot confirm a token (down, 5xx, odd reply); retryable."""


def looks_like_jwt(token: str) -> bool:
    """Whether `token` has the shape of a JWT (three base64url parts), as Oakestra's have."""
    return bool(_JWT_SHAPE.fullmatch(token))


def _role_names(roles: object) -> set[str]:
    """Role names from Oakestra's forms: `["Admin", ...]` or `[{"name": "Admin"}, ...]`."""
    if isinstance(roles, str):
        return {roles}
    names: set[str] = set()
    if isinstance(roles, Iterable) and not isinstance(roles, dict | bytes):
        for role in roles:
            if isinstance(role, str):
                names.add(role)
            elif isinstance(role, dict) and isinstance(role.get("name"), str):
                names.add(role["name"])
    return names


class OakestraTokenVerifier:
    """Turn an Oakestra access token into a `Caller`, asking the Oakestra root; thread-safe.

    Parameters
    ----------
    base_url : str
        The Oakestra root's API (the system manager), e.g. `http://root:10000`.
    retries : int
        Extra attempts after a connection error, a timeout or a 5xx answer.
    backoff_s : float
        Delay before the first retry; it doubles with every retry (with jitter).
    timeout_s : float
        Per-request timeout.
    cache_ttl_s : float
        How long a confirmed token is trusted without asking again (never beyond its `exp`).
    max_cached : int
        At most this many confirmed tokens are remembered.
    transport : httpx.BaseTransport | None
        For tests of the verifier itself.
    clock : Callable[[], float]
        Wall-clock time in seconds (JWT `exp` is wall-clock); for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        cache_ttl_s: float = 60.0,
        max_cached: int = 1024,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.cache_ttl_s = cache_ttl_s
        self.max_cached = max_cached
        self._clock = clock
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
            transport=transport,
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        # SHA-256 of a token -> (the caller it stands for, until when that holds).
        self._cache: dict[str, tuple[Caller, float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> OakestraTokenVerifier:
        """Build the verifier from the manager's settings (`oakestra_url`, retries, backoff)."""
        if not settings.oakestra_url:
            raise ValueError("accepting Oakestra tokens needs oakestra_url (FLOPS_OAKESTRA_URL)")
        return cls(
            settings.oakestra_url,
            retries=settings.oakestra_retries,
            backoff_s=settings.oakestra_backoff_s,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def verify(self, token: str) -> Caller:
        """Return who `token` belongs to, as confirmed by the Oakestra root.

        Parameters
        ----------
        token : str
            The bearer token the client sent (an Oakestra access token, or so it seems).

        Returns
        -------
        Caller
            Customer = the Oakestra username; admin if the user has the `Admin` role.

        Raises
        ------
        InvalidOakestraTokenError
            Not a JWT, no user, expired, a refresh token, or Oakestra rejects it (401).
        OakestraUserNotAllowedError
            The user is valid, but its name cannot be a FLOps customer id (403).
        OakestraUnavailableError
            Oakestra could not be asked, after the retries (503).
        """
        claims = self._claims(token)
        username = claims["sub"]
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        user = self._fetch_user(username, token)
        roles = _role_names(user.get("roles")) | _role_names(claims.get("roles"))
        caller = self._caller(username, is_admin=ADMIN_ROLE in roles)
        self._remember(key, caller, until=min(float(claims["exp"]), now + self.cache_ttl_s))
        _log.info("Oakestra user %r confirmed (admin: %s)", username, caller.is_admin)
        return caller

    def _claims(self, token: str) -> dict[str, Any]:
        """The token's claims, read without checking the signature (Oakestra checks it)."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise InvalidOakestraTokenError("it is not a readable JWT") from e
        username = claims.get("sub")
        if not isinstance(username, str) or not username:
            raise InvalidOakestraTokenError("it names no user (claim 'sub')")
        if claims.get("type", "access") != "access":
            raise InvalidOakestraTokenError(
                "it is not an access token; send the 'token' of POST /api/auth/login, "
                "not the refresh token"
            )
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidOakestraTokenError("it has no expiry (claim 'exp')")
        if exp <= self._clock():
            when = datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")
            _log.info("rejected an expired Oakestra token of user %r", username)
            raise InvalidOakestraTokenError(
                f"it expired at {when}; log in to Oakestra again (oak CLI: run the command again)"
            )
        return dict(claims)

    def _caller(self, username: str, *, is_admin: bool) -> Caller:
        if not _CUSTOMER_ID.fullmatch(username):
            raise OakestraUserNotAllowedError(
                f"Oakestra user {username!r} cannot be a FLOps customer: customer ids are 1-128 "
                "letters, digits or '_.@-', starting with a letter or digit"
            )
        if username.casefold() == ADMIN_CUSTOMER_ID.casefold() and not is_admin:
            raise OakestraUserNotAllowedError(
                f"Oakestra user {username!r} does not have the {ADMIN_ROLE!r} role, but "
                f"{ADMIN_CUSTOMER_ID!r} is the FLOps admin's customer id"
            )
        return Caller(customer_id=username, is_admin=is_admin)

    def _fetch_user(self, username: str, token: str) -> dict[str, Any]:
        """`GET /api/user/<username>` with the caller's token; its decoded reply."""
        path = f"/api/user/{quote(username, safe='')}"
        where = redact_url(self.base_url)
        attempt = 0
        while True:
            try:
                response = self._http.get(path, headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError as e:
                if attempt < self.retries:
                    self._pause(attempt, type(e).__name__)
                    attempt += 1
                    continue
                _log.warning("Oakestra root at %s unreachable: %s", where, type(e).__name__)
                raise OakestraUnavailableError(
                    f"cannot check the Oakestra token: the Oakestra root at {where} is not "
                    f"reachable ({type(e).__name__}, {attempt + 1} attempts). Check that it "
                    "runs and that FLOPS_OAKESTRA_URL points at it, or use a FLOps API token"
                ) from e
            status = response.status_code
            if status >= 500 and attempt < self.retries:
                self._pause(attempt, f"HTTP {status}")
                attempt += 1
                continue
            break
        if status >= 500:
            _log.warning("Oakestra root at %s answered HTTP %s: %s", where, status,
                         error_text(response))  # fmt: skip
            raise OakestraUnavailableError(
                f"cannot check the Oakestra token: the Oakestra root at {where} keeps answering "
                f"HTTP {status} ({attempt + 1} attempts); try again shortly, or use a FLOps API "
                "token"
            )
        if status in _REJECTED:
            _log.info("Oakestra rejected the token of user %r: HTTP %s", username, status)
            raise InvalidOakestraTokenError(
                f"the Oakestra root rejected it (HTTP {status}); log in to Oakestra again"
            )
        user = self._user_from(response) if status == 200 else None
        if user is None:
            _log.warning("Oakestra root at %s gave an unexpected answer to GET %s: HTTP %s",
                         where, path, status)  # fmt: skip
            raise OakestraUnavailableError(
                f"cannot check the Oakestra token: {where} did not answer like an Oakestra root "
                f"(HTTP {status} to GET /api/user/...). Check FLOPS_OAKESTRA_URL"
            )
        name = user.get("name")
        if isinstance(name, str) and name != username:
            raise InvalidOakestraTokenError("the Oakestra root answered for another user")
        return user

    @staticmethod
    def _user_from(response: httpx.Response) -> dict[str, Any] | None:
        try:
            user = decode(response.json())
        except ValueError:
            return None
        return user if isinstance(user, dict) else None

    def _pause(self, attempt: int, why: str) -> None:
        delay = self.backoff_s * 2**attempt * random.uniform(0.5, 1.0)
        _log.warning("Oakestra GET /api/user/...: %s; retry %s in %.2fs", why, attempt + 1, delay)
        time.sleep(delay)

    def _remember(self, key: str, caller: Caller, *, until: float) -> None:
        now = self._clock()
        with self._lock:
            if len(self._cache) >= self.max_cached:
                for stale in [k for k, (_, t) in self._cache.items() if t <= now]:
                    del self._cache[stale]
                while len(self._cache) >= self.max_cached:  # still full: drop the oldest
                    del self._cache[next(iter(self._cache))]
            self._cache[key] = (caller, until)
