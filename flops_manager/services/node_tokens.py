"""Node tokens: the admin issues one per learner node, stored hashed; it registers only that node.

A node token is the data server's credential towards the manager: with it, the data server on
node `N` reports itself (`PUT /api/flops/nodes/N`), and nothing else. It is not an API token:
the API's authentication looks only at API tokens, and the node route only at node tokens, so
neither works in the other's place. Like API tokens, node tokens are random (256 bits), shown
once when issued, stored as their SHA-256 hash, listed without it and revoked by id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from flops_core.api_tokens import generate_token, hash_token
from flops_core.errors import PermanentError
from flops_core.logs import get_logger
from flops_manager.db import NodeToken
from flops_manager.db.models import as_utc, utcnow
from flops_manager.services.token_rows import list_rows, revoke_row, valid_row

__all__ = [
    "NODE_NAME_PATTERN",
    "InvalidNodeNameError",
    "IssuedNodeToken",
    "NodeTokenError",
    "NodeTokenInvalidError",
    "NodeTokenNotFoundError",
    "NodeTokenOtherNodeError",
    "check_node_name",
    "create_node_token",
    "list_node_tokens",
    "node_token_record",
    "revoke_node_token",
]

_log = get_logger("manager.nodes")

#: What a node name may look like (Oakestra's node and host names): it appears in URLs.
NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_NODE_NAME = re.compile(NODE_NAME_PATTERN)


class NodeTokenError(PermanentError):
    """Base of the node-token errors; each message is safe to show to the caller."""


class NodeTokenInvalidError(NodeTokenError):
    """Raised when a node report carries no node token, or an unknown or revoked one (401)."""

    def __init__(self) -> None:
        super().__init__(
            "invalid or revoked node token: a node reports with its own node token, created "
            "by the admin with `flops node-token create NODE` (API tokens do not work here)"
        )


class NodeTokenOtherNodeError(NodeTokenError):
    """Raised when a valid node token is used to report another node than its own (403).

    Parameters
    ----------
    owner : str
        The node the token was issued for.
    name : str
        The node the report was about.
    """

    def __init__(self, owner: str, name: str) -> None:
        super().__init__(f"this node token belongs to node {owner}, not {name}")
        self.owner = owner
        self.name = name


class NodeTokenNotFoundError(NodeTokenError):
    """Raised when a node-token id does not exist (404).

    Parameters
    ----------
    token_id : int
        The id that was asked for.
    """

    def __init__(self, token_id: int) -> None:
        super().__init__(f"node token {token_id} not found")
        self.token_id = token_id


class InvalidNodeNameError(NodeTokenError, ValueError):
    """Raised when a node name does not match `NODE_NAME_PATTERN` (422)."""


@dataclass(frozen=True)
class IssuedNodeToken:
    """A newly created node-token row and the token itself, which is never stored or shown again.

    Parameters
    ----------
    record : NodeToken
        The stored row (it holds only the token's hash).
    token : str
        The token to hand to the node's data server (`FLOPS_NODE_TOKEN`).
    """

    record: NodeToken
    token: str


def check_node_name(name: str) -> str:
    """Return `name` if a node may be called so, else raise `InvalidNodeNameError`.

    Parameters
    ----------
    name : str
        1-63 letters, digits or `_.-`, starting with a letter or digit.
    """
    if not _NODE_NAME.fullmatch(name):
        raise InvalidNodeNameError(
            f"node name {name!r} must be 1-63 letters, digits or '_.-', starting with a "
            "letter or digit"
        )
    return name


def create_node_token(
    *, session: Session, node: str, label: str = "", simulated: bool = False
) -> IssuedNodeToken:
    """Create a token with which node `node` (and only it) registers, and store its hash.

    A node may hold several valid tokens at once (e.g. while a new one is rolled out).

    Parameters
    ----------
    session : Session
        The database session; the caller commits.
    node : str
        The name the node reports under (see `check_node_name`).
    label : str
        A note for the admin, e.g. where the node stands.
    simulated : bool
        Whether it is for one of the embedded default's own data servers.

    Returns
    -------
    IssuedNodeToken
        The stored row and the token, which exists nowhere else from now on.
    """
    check_node_name(node)
    token = generate_token()
    record = NodeToken(
        node=node,
        token_hash=hash_token(token),
        label=label,
        simulated=simulated,
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    _log.info("created node token %s for node %s (simulated: %s)", record.id, node, simulated)
    return IssuedNodeToken(record=record, token=token)


def list_node_tokens(*, session: Session, include_revoked: bool = False) -> list[NodeToken]:
    """Return the stored node tokens, oldest first (rows hold hashes, never tokens).

    Parameters
    ----------
    session : Session
        The database session.
    include_revoked : bool
        Whether revoked tokens are listed too.
    """
    return list_rows(session, NodeToken, include_revoked=include_revoked)


def revoke_node_token(*, session: Session, token_id: int) -> datetime:
    """Revoke a node token: its node's reports get 401 from now on. Revoking twice is fine.

    The node stays listed (it turns stale) until a new token registers it again.

    Parameters
    ----------
    session : Session
        The database session; the caller commits.
    token_id : int
        The token's id as listed by `list_node_tokens`.

    Returns
    -------
    datetime
        When the token was (first) revoked (UTC).

    Raises
    ------
    NodeTokenNotFoundError
        If there is no node token with this id.
    """
    revoked = revoke_row(session, NodeToken, token_id)
    if revoked is None:
        raise NodeTokenNotFoundError(token_id)
    record, now = revoked
    if now:
        _log.info("revoked node token %s of node %s", token_id, record.node)
    assert record.revoked_at is not None
    return as_utc(record.revoked_at)


def node_token_record(*, session: Session, token: str) -> NodeToken | None:
    """Return the valid (unrevoked) node token row `token` is, or None.

    Parameters
    ----------
    session : Session
        The database session.
    token : str
        The bearer token a node sent.
    """
    return valid_row(session, NodeToken, token)
