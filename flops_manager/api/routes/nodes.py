"""Learner nodes: `PUT /api/flops/nodes/{name}` (a node's report, node token only) and
`GET /api/flops/nodes` (the registry: everything for the admin; a customer sees the nodes and
the tags it may name, with their row counts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from flops_manager.api.deps import CurrentCaller, NodeTokenDep, SessionDep, SettingsDep
from flops_manager.api.errors import AUTH_RESPONSES, ErrorBody
from flops_manager.core.data_tags import customer_data_tag
from flops_manager.services import nodes as node_service
from flops_manager.services.nodes import NODE_NAME_PATTERN, NodeReport, RegisteredNode

__all__ = ["NodeAdminView", "NodeTag", "NodeView", "router"]

router = APIRouter(tags=["nodes"])

NodeState = Literal["ready", "stale"]

_STATE = (
    "`ready`: the node reported within the manager's stale time (FLOPS_NODE_STALE_AFTER_S) "
    "and gets learners; `stale`: it has not, and gets no new learners."
)


class NodeTag(BaseModel):
    """A data tag a node holds, and how many rows."""

    tag: str = Field(
        description="For the admin, the tag as the data server stores it (`<namespace>:TAG` "
        "for a customer's TAG, plain `TAG` for shared data); for a customer, as the customer "
        "writes it in `data_tags` (`TAG` for its own data, `shared:TAG` for shared data)."
    )
    rows: int = Field(description="Rows the node holds under the tag.")


class NodeView(BaseModel):
    """A learner node as a customer sees it: no addresses, only the tags it may name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The node's name.")
    cluster: str = Field(description="The cluster the node belongs to.")
    platform: str = Field(description="The node's platform, e.g. `linux/arm64`.")
    state: NodeState = Field(description=_STATE)
    tags: list[NodeTag] = Field(
        description="The customer's own and the shared data tags the node holds, by name."
    )


class NodeAdminView(BaseModel):
    """A learner node as the admin sees it: everything it last reported."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The node's name.")
    cluster: str = Field(description="The cluster the node belongs to.")
    platform: str = Field(description="The node's platform, e.g. `linux/arm64`.")
    state: NodeState = Field(description=_STATE)
    address: str = Field(description="The address other hosts reach the node's data server at.")
    port: int = Field(description="The data server's port.")
    data_server: str = Field(description="The data server's URL, e.g. `grpc://10.0.0.2:11027`.")
    simulated: bool = Field(description="Whether it is one of the embedded default's own nodes.")
    last_seen: datetime = Field(description="When the node last reported (UTC).")
    version: str = Field(description="The data server's FLOps version, as reported.")
    tags: list[NodeTag] = Field(description="Every data tag the node holds, as stored.")
    reads: dict[str, int] = Field(
        description="Reader host -> datasets its data server served it since the server started."
    )


def admin_view(node: RegisteredNode) -> NodeAdminView:
    """Everything the registry holds about `node`."""
    return NodeAdminView(
        name=node.name,
        cluster=node.cluster,
        platform=node.platform,
        state="stale" if node.stale else "ready",
        address=node.address,
        port=node.port,
        data_server=node.data_server_url,
        simulated=node.simulated,
        last_seen=node.last_seen,
        version=node.version,
        tags=[NodeTag(tag=tag, rows=rows) for tag, rows in sorted(node.tags.items())],
        reads=dict(sorted(node.reads.items())),
    )


def customer_view(node: RegisteredNode, customer_id: str) -> NodeView:
    """`node` as `customer_id` sees it: its own and shared tags, by the names it writes."""
    tags = [
        NodeTag(tag=written, rows=rows)
        for stored, rows in node.tags.items()
        if (written := customer_data_tag(customer_id, stored)) is not None
    ]
    return NodeView(
        name=node.name,
        cluster=node.cluster,
        platform=node.platform,
        state="stale" if node.stale else "ready",
        tags=sorted(tags, key=lambda t: t.tag),
    )


NodeName = Annotated[
    str,
    Path(
        pattern=NODE_NAME_PATTERN,
        max_length=63,
        description="The node's name: 1-63 letters, digits or `_.-`, starting with a letter or "
        "digit; the one its node token was created for.",
    ),
]


@router.put(
    "/nodes/{name}",
    response_model=NodeAdminView,
    summary="Report a node (node token)",
    responses={
        401: {"model": ErrorBody, "description": "No node token, or an invalid or revoked one."},
        403: {"model": ErrorBody, "description": "The node token belongs to another node."},
    },
)
@router.put("/nodes/{name}/", response_model=NodeAdminView, include_in_schema=False)
def report_node(
    name: NodeName,
    body: NodeReport,
    token: NodeTokenDep,
    session: SessionDep,
) -> NodeAdminView:
    """Register a learner node, or refresh it: its data server sends this every few seconds.

    Needs the node's own node token; API tokens do not work here.
    """
    node = node_service.record_report(session=session, token=token, name=name, report=body)
    return admin_view(node)


@router.get(
    "/nodes",
    response_model=list[NodeAdminView] | list[NodeView],
    summary="List the learner nodes",
    responses=AUTH_RESPONSES,
)
@router.get("/nodes/", response_model=list[NodeAdminView] | list[NodeView], include_in_schema=False)
def list_nodes(
    caller: CurrentCaller, session: SessionDep, settings: SettingsDep
) -> list[NodeAdminView] | list[NodeView]:
    """The registered learner nodes, by name.

    The admin sees everything each node reported (`NodeAdminView`); a customer sees each
    node's name, cluster, platform and state, and the data tags it may name with their row
    counts (`NodeView`): its own and shared tags, never other customers'.
    """
    nodes = node_service.list_nodes(session=session, stale_after_s=settings.node_stale_after_s)
    if caller.is_admin:
        return [admin_view(node) for node in nodes]
    return [customer_view(node, caller.customer_id) for node in nodes]
