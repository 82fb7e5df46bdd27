"""The node registry: learner nodes report themselves with their node token; placement reads it.

A learner node is a host with a FLOps data server. The data server, started with the manager's
URL and the node's token, reports every few seconds (`PUT /api/flops/nodes/{name}`, body
`NodeReport`): its cluster, platform, the address other hosts reach it at, its port, and which
data tags it holds with how many rows (never the data), plus which reader hosts it served. The
manager keeps the latest report per node (`db.Node`); a node not heard from within
`node_stale_after_s` is stale: listed as such, and given no new learners. The embedded default
registers its own data servers the same way, as simulated nodes with tokens it issues itself
at every start (`issue_simulated_node_tokens`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flops_core.logs import get_logger
from flops_manager.db import Node, NodeToken
from flops_manager.db.models import as_utc, utcnow
from flops_manager.services.node_tokens import (
    NODE_NAME_PATTERN,
    InvalidNodeNameError,
    IssuedNodeToken,
    NodeTokenError,
    NodeTokenInvalidError,
    NodeTokenNotFoundError,
    NodeTokenOtherNodeError,
    check_node_name,
    create_node_token,
    list_node_tokens,
    node_token_record,
    revoke_node_token,
)

__all__ = [
    "CLUSTER_PATTERN",
    "NODE_NAME_PATTERN",
    "PLATFORM_PATTERN",
    "InvalidNodeNameError",
    "IssuedNodeToken",
    "NodeReport",
    "NodeTokenError",
    "NodeTokenInvalidError",
    "NodeTokenNotFoundError",
    "NodeTokenOtherNodeError",
    "RegisteredNode",
    "check_node_name",
    "create_node_token",
    "issue_simulated_node_tokens",
    "list_node_tokens",
    "list_nodes",
    "record_report",
    "revoke_node_token",
]

_log = get_logger("manager.nodes")

#: A cluster name as a node reports it (Oakestra cluster names, `local` for the embedded one).
CLUSTER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: A platform as container images name them: `os/arch[/variant]`, e.g. `linux/arm64`.
PLATFORM_PATTERN = r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$"
)

_StoredTag = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_ReaderHost = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_Count = Annotated[int, Field(ge=0)]


class NodeReport(BaseModel):
    """What a learner node's data server reports about itself (`PUT /api/flops/nodes/{name}`)."""

    model_config = ConfigDict(extra="forbid")

    cluster: str = Field(
        min_length=1,
        max_length=64,
        pattern=CLUSTER_PATTERN,
        description="The cluster the node belongs to (Oakestra's cluster name; `local` for "
        "the embedded default's simulated nodes): 1-64 letters, digits or `_.-`.",
        examples=["edge-a"],
    )
    platform: str = Field(
        max_length=64,
        pattern=PLATFORM_PATTERN,
        description="The node's platform as images name it, `os/arch[/variant]`; learners "
        "placed on the node get the image of this platform.",
        examples=["linux/arm64"],
    )
    address: str = Field(
        min_length=1,
        max_length=253,
        description="The IP address or DNS name at which other hosts (learners, the manager's "
        "mock-data jobs) reach the node's data server.",
        examples=["10.0.0.2"],
    )
    port: int = Field(ge=1, le=65535, description="The data server's port (11027 on workers).")
    tags: dict[_StoredTag, _Count] = Field(
        default_factory=dict,
        max_length=10_000,
        description="Each data tag the node holds, as stored on the data server (a customer's "
        "`<namespace>:TAG`, a shared `TAG`), with the number of rows held under it.",
    )
    reads: dict[_ReaderHost, _Count] = Field(
        default_factory=dict,
        max_length=1_000,
        description="Each host that read data from this data server since it started, with "
        "how many datasets it was served.",
    )
    version: str = Field("", max_length=64, description="The data server's FLOps version.")

    @field_validator("address")
    @classmethod
    def _reachable_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
        if _HOSTNAME.fullmatch(value):
            return value
        raise ValueError(
            f"address {value!r} must be an IP address or a DNS name at which other hosts reach "
            "the node, e.g. 10.0.0.2"
        )


@dataclass(frozen=True)
class RegisteredNode:
    """A learner node as the registry knows it: its latest report and whether it is fresh.

    Parameters
    ----------
    name : str
        The node's name (`NODE_NAME_PATTERN`; Oakestra's node name on Oakestra).
    cluster : str
        The cluster it belongs to.
    platform : str
        Its platform, e.g. `linux/amd64`.
    address : str
        The host (IP address or DNS name) other hosts reach it at.
    port : int
        Its data server's port.
    tags : dict[str, int]
        Stored data tag -> rows held.
    reads : dict[str, int]
        Reader host -> datasets it was served (do_get calls) since the data server started.
    simulated : bool
        Whether it is one of the embedded default's own data servers.
    last_seen : datetime
        When it last reported (UTC).
    stale : bool
        Whether it has not reported within the stale time.
    version : str
        The data server's FLOps version, as reported.
    """

    name: str
    cluster: str
    platform: str
    address: str
    port: int
    tags: dict[str, int]
    reads: dict[str, int]
    simulated: bool
    last_seen: datetime
    stale: bool
    version: str = ""

    @property
    def data_server_url(self) -> str:
        """The data server's Flight URL, e.g. `grpc://10.0.0.2:11027` (`grpc://[::1]:11027`)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"grpc://{host}:{self.port}"

    def rows_for(self, stored_tags: Iterable[str]) -> int:
        """The rows the node holds under any of `stored_tags` (each tag counted once)."""
        return sum(self.tags.get(tag, 0) for tag in set(stored_tags))


def _registered(row: Node, *, now: datetime, stale_after_s: float) -> RegisteredNode:
    last_seen = as_utc(row.last_seen)
    return RegisteredNode(
        name=row.name,
        cluster=row.cluster,
        platform=row.platform,
        address=row.address,
        port=row.port,
        tags=dict(row.tags or {}),
        reads=dict(row.reads or {}),
        simulated=row.simulated,
        last_seen=last_seen,
        stale=(now - last_seen).total_seconds() > stale_after_s,
        version=row.version,
    )


def list_nodes(
    *, session: Session, stale_after_s: float, now: datetime | None = None
) -> list[RegisteredNode]:
    """Return every registered node, sorted by name, each marked stale or not.

    Parameters
    ----------
    session : Session
        The database session.
    stale_after_s : float
        Seconds after its last report from which a node is stale (`node_stale_after_s`).
    now : datetime | None
        The time to judge staleness at (UTC); default now.
    """
    at = as_utc(now) if now is not None else utcnow()
    rows = session.scalars(select(Node).order_by(Node.name))
    return [_registered(row, now=at, stale_after_s=stale_after_s) for row in rows]


def record_report(
    *,
    session: Session,
    token: str,
    name: str,
    report: NodeReport,
    now: datetime | None = None,
) -> RegisteredNode:
    """Register node `name` or refresh it with its latest report, if `token` is its node token.

    Parameters
    ----------
    session : Session
        The database session; the caller commits.
    token : str
        The node token the report came with.
    name : str
        The node the report is about (the path's `{name}`).
    report : NodeReport
        The report.
    now : datetime | None
        When it was received (UTC); default now.

    Returns
    -------
    RegisteredNode
        The node as now registered (fresh).

    Raises
    ------
    NodeTokenInvalidError
        `token` is no node token, or a revoked one (401).
    NodeTokenOtherNodeError
        `token` is the node token of another node (403).
    """
    record = node_token_record(session=session, token=token)
    if record is None:
        _log.info("refused a report for node %s: invalid or revoked node token", name)
        raise NodeTokenInvalidError()
    if record.node != name:
        _log.warning(
            "refused a report for node %s: it came with node token %s of node %s",
            name,
            record.id,
            record.node,
        )
        raise NodeTokenOtherNodeError(record.node, name)
    at = as_utc(now) if now is not None else utcnow()
    row = session.get(Node, name)
    if row is None:
        row = _insert(session, name=name, at=at) or session.get(Node, name)
        assert row is not None
    _log_changes(row, report, simulated=record.simulated)
    row.cluster = report.cluster
    row.platform = report.platform
    row.address = report.address
    row.port = report.port
    row.tags = dict(report.tags)
    row.reads = dict(report.reads)
    row.version = report.version
    row.simulated = record.simulated
    row.last_seen = at
    session.flush()
    return _registered(row, now=at, stale_after_s=float("inf"))


def _insert(session: Session, *, name: str, at: datetime) -> Node | None:
    """Add a new node row; None if a concurrent report of the same node added it first."""
    row = Node(
        name=name, cluster="", platform="", address="", port=0, tags={}, reads={},
        registered_at=at, last_seen=at,
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def _log_changes(row: Node, report: NodeReport, *, simulated: bool) -> None:
    where = f"{report.address}:{report.port}"
    if not row.cluster:
        _log.info(
            "node %s registered: cluster %s, %s, data server at %s%s",
            row.name,
            report.cluster,
            report.platform,
            where,
            " (simulated)" if simulated else "",
        )
    elif (row.cluster, row.platform, f"{row.address}:{row.port}") != (
        report.cluster,
        report.platform,
        where,
    ):
        _log.info(
            "node %s changed: cluster %s, %s, data server at %s",
            row.name,
            report.cluster,
            report.platform,
            where,
        )
    elif set(row.tags or {}) != set(report.tags):
        _log.info("node %s now holds %s data tag(s)", row.name, len(report.tags))


def issue_simulated_node_tokens(*, session: Session, names: Sequence[str]) -> dict[str, str]:
    """Issue fresh tokens for the embedded default's own data servers (the caller commits).

    Earlier simulated tokens are revoked, and simulated nodes not in `names` are forgotten (a
    manager restarted with fewer local nodes lists no leftovers); nodes registered with tokens
    the admin issued are left alone.

    Parameters
    ----------
    session : Session
        The database session.
    names : Sequence[str]
        The simulated nodes' names, e.g. `["node0", "node1", "node2"]`.

    Returns
    -------
    dict[str, str]
        Node name -> its new token (for the data server's `FLOPS_NODE_TOKEN`).
    """
    for name in names:
        check_node_name(name)
    session.execute(
        update(NodeToken)
        .where(NodeToken.simulated.is_(True), NodeToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.execute(delete(Node).where(Node.simulated.is_(True), Node.name.not_in(list(names))))
    tokens = {
        name: create_node_token(session=session, node=name, label="embedded", simulated=True).token
        for name in names
    }
    _log.info("issued node tokens for %s simulated node(s)", len(tokens))
    return tokens
