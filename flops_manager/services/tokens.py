"""API tokens: issue, list, revoke, and authenticate a bearer token to a `Caller`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from flops_core.api_tokens import generate_token, hash_token, tokens_match
from flops_core.errors import PermanentError
from flops_core.logs import get_logger
from flops_manager.db import ApiToken
from flops_manager.db.models import utcnow
from flops_manager.services.token_rows import list_rows, revoke_row, valid_row

__all__ = [
    "ADMIN_CUSTOMER_ID",
    "CUSTOMER_ID_PATTERN",
    "Caller",
    "InvalidCustomerIdError",
    "IssuedToken",
    "TokenError",
    "TokenNotFoundError",
    "authenticate",
    "check_customer_id",
    "create_token",
    "list_tokens",
    "revoke_token",
]

_log = get_logger("manager.api")

#: The customer id of the configured admin token (and the default `customerID` of projects).
ADMIN_CUSTOMER_ID = "Admin"
#: What a customer id may look like: it appears in URLs, logs and service names.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)


class TokenError(PermanentError):
    """Base of the token service's errors; each message is safe to show to the caller."""


class TokenNotFoundError(TokenError):
    """Raised when a token id does not exist; permanent.

    Parameters
    ----------
    token_id : int
        The id that was asked for.
    """

    def __init__(self, token_id: int) -> None:
        super().__init__(f"API token {token_id} not found")
        self.token_id = token_id


class InvalidCustomerIdError(TokenError, ValueError):
    """Raised when a customer id does not match `CUSTOMER_ID_PATTERN` or is reserved; permanent."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the customer a valid token belongs to, and whether it is an admin.

    Parameters
    ----------
    customer_id : str
        The token's customer; `"Admin"` for the configured admin token.
    is_admin : bool
        Whether the caller may manage tokens and see every customer's projects.
    """

    customer_id: str
    is_admin: bool


@dataclass(frozen=True)
class IssuedToken:
    """A newly created token row and the token itself, which is never stored or shown again.

    Parameters
    ----------
    record : ApiToken
        The stored row (it holds only the token's hash).
    token : str
        The bearer token to hand to the customer.
    """

    record: ApiToken
    token: str


def check_customer_id(customer_id: str) -> str:
    """Return `customer_id` if it may own a database token, else raise `InvalidCustomerIdError`.

    Parameters
    ----------
    customer_id : str
        Letters, digits and `_.@-`, starting with a letter or digit, at most 128 characters;
        `Admin` (any case) is reserved for the configured admin token.
    """
    if not _CUSTOMER_ID.fullmatch(customer_id):
        raise InvalidCustomerIdError(
            "customer id must be 1-128 letters, digits or '_.@-', starting with a letter or digit"
        )
    if customer_id.casefold() == ADMIN_CUSTOMER_ID.casefold():
        raise InvalidCustomerIdError(
            f"customer id {customer_id!r} is reserved: {ADMIN_CUSTOMER_ID!r} (in any case) is "
            "the configured admin token's customer"
        )
    return customer_id


def create_token(
    *, session: Session, customer_id: str, label: str = "", is_admin: bool = False
) -> IssuedToken:
    """Create a token for a customer and store its hash.

    Parameters
    ----------
    session : Session
        The request's database session; the caller commits.
    customer_id : str
        Whose token it is (see `check_customer_id`).
    label : str
        A note for the admin, e.g. which machine uses the token.
    is_admin : bool
        Whether the token grants admin rights.

    Returns
    -------
    IssuedToken
        The stored row and the token, which exists nowhere else from now on.
    """
    check_customer_id(customer_id)
    token = generate_token()
    record = ApiToken(
        token_hash=hash_token(token),
        customer_id=customer_id,
        label=label,
        is_admin=is_admin,
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    _log.info("created API token %s for customer %s (admin: %s)", record.id, customer_id, is_admin)
    return IssuedToken(record=record, token=token)


def list_tokens(*, session: Session, include_revoked: bool = False) -> list[ApiToken]:
    """Return the stored tokens, oldest first (rows hold hashes, never tokens).

    Parameters
    ----------
    session : Session
        The request's database session.
    include_revoked : bool
        Whether revoked tokens are listed too.
    """
    return list_rows(session, ApiToken, include_revoked=include_revoked)


def revoke_token(*, session: Session, token_id: int) -> datetime:
    """Revoke a token so that it no longer authenticates; revoking twice changes nothing.

    Parameters
    ----------
    session : Session
        The request's database session; the caller commits.
    token_id : int
        The token's id as listed by `list_tokens`.

    Returns
    -------
    datetime
        When the token was (first) revoked.

    Raises
    ------
    TokenNotFoundError
        If there is no token with this id.
    """
    revoked = revoke_row(session, ApiToken, token_id)
    if revoked is None:
        raise TokenNotFoundError(token_id)
    record, now = revoked
    if now:
        _log.info("revoked API token %s of customer %s", token_id, record.customer_id)
    assert record.revoked_at is not None
    return record.revoked_at


def authenticate(*, session: Session, token: str, admin_token: str | None) -> Caller | None:
    """Return who `token` belongs to, or None if it is unknown or revoked.

    Parameters
    ----------
    session : Session
        A database session to look the token's hash up in.
    token : str
        The bearer token the client sent.
    admin_token : str | None
        The configured admin token, compared in constant time; None if there is none.
    """
    if not token:
        return None
    if admin_token and tokens_match(token, admin_token):
        return Caller(customer_id=ADMIN_CUSTOMER_ID, is_admin=True)
    record = valid_row(session, ApiToken, token)
    if record is None:
        return None
    return Caller(customer_id=record.customer_id, is_admin=record.is_admin)
