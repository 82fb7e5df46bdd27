"""Stored bearer tokens (API tokens, node tokens): find a valid one, list them, revoke one.

Both kinds are rows holding only the token's SHA-256 hash, with `revoked_at` set once they
are revoked; what differs (who a token is for, what it grants) stays with each kind's service.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from flops_core.api_tokens import hash_token
from flops_manager.db import ApiToken, NodeToken
from flops_manager.db.models import utcnow

__all__ = ["list_rows", "revoke_row", "valid_row"]

Row = TypeVar("Row", ApiToken, NodeToken)


def valid_row(session: Session, model: type[Row], token: str) -> Row | None:
    """The unrevoked row of `model` whose hash is `token`'s, or None (also for "")."""
    if not token:
        return None
    query = select(model).where(model.token_hash == hash_token(token), model.revoked_at.is_(None))
    return session.scalars(query).one_or_none()


def list_rows(session: Session, model: type[Row], *, include_revoked: bool) -> list[Row]:
    """The rows of `model`, oldest first; revoked ones only if `include_revoked`."""
    query = select(model).order_by(model.id)
    if not include_revoked:
        query = query.where(model.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_row(session: Session, model: type[Row], token_id: int) -> tuple[Row, bool] | None:
    """Revoke the row `token_id` of `model` unless it already is; None if there is none.

    Returns the row and whether this call revoked it (False: it was revoked before).
    """
    record = session.get(model, token_id)
    if record is None:
        return None
    if record.revoked_at is not None:
        return record, False
    record.revoked_at = utcnow()
    session.flush()
    return record, True
