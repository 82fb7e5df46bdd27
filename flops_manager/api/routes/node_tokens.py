"""Node tokens (`/api/flops/node-tokens`, admin only): create one per learner node, list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flops_manager.api.deps import AdminCaller, SessionDep
from flops_manager.api.errors import ADMIN_RESPONSES, ErrorBody
from flops_manager.db.models import as_utc
from flops_manager.services import nodes as node_service
from flops_manager.services.nodes import NODE_NAME_PATTERN

__all__ = ["NodeTokenCreate", "NodeTokenCreated", "NodeTokenInfo", "router"]

router = APIRouter(tags=["nodes"], responses=ADMIN_RESPONSES)


class NodeTokenCreate(BaseModel):
    """A new node token for one learner node."""

    model_config = ConfigDict(extra="forbid")

    node: str = Field(
        max_length=63,
        pattern=NODE_NAME_PATTERN,
        description="The node the token registers (its Oakestra node name on Oakestra): 1-63 "
        "letters, digits or `_.-`, starting with a letter or digit. The data server reports "
        "under this name, and the token works for no other.",
        examples=["worker-a1"],
    )
    label: str = Field("", max_length=128, description="A note, e.g. where the node stands.")


class NodeTokenInfo(BaseModel):
    """A stored node token as listed: never the token itself, nor its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The token's id, for `DELETE /api/flops/node-tokens/{id}`.")
    node: str = Field(description="The node the token registers.")
    label: str = Field(description="The note given when the token was created.")
    simulated: bool = Field(
        description="Whether the embedded default issued it for one of its own data servers "
        "(replaced at every manager start)."
    )
    created_at: datetime = Field(description="When the token was created (UTC).")
    revoked_at: datetime | None = Field(
        None, description="When the token was revoked (UTC); null while it is valid."
    )

    @field_validator("created_at", "revoked_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class NodeTokenCreated(BaseModel):
    """A node token just created: the only response that ever contains the token."""

    id: int = Field(description="The token's id, for `DELETE /api/flops/node-tokens/{id}`.")
    node: str = Field(description="The node the token registers.")
    label: str = Field(description="The note given when the token was created.")
    created_at: datetime = Field(description="When the token was created (UTC).")
    token: str = Field(
        description="The node token. Give it to the node's data server (environment "
        "`FLOPS_NODE_TOKEN` or `--node-token-file`) now: the manager keeps only its hash."
    )


@router.post(
    "/node-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=NodeTokenCreated,
    summary="Create a node token (admin)",
)
@router.post(
    "/node-tokens/",
    status_code=status.HTTP_201_CREATED,
    response_model=NodeTokenCreated,
    include_in_schema=False,
)
def create_node_token(
    body: NodeTokenCreate, session: SessionDep, _admin: AdminCaller
) -> NodeTokenCreated:
    """Create a token for a learner node; the response is the only time the token is shown."""
    issued = node_service.create_node_token(session=session, node=body.node, label=body.label)
    record = issued.record
    return NodeTokenCreated(
        id=record.id,
        node=record.node,
        label=record.label,
        created_at=as_utc(record.created_at),
        token=issued.token,
    )


@router.get("/node-tokens", response_model=list[NodeTokenInfo], summary="List node tokens (admin)")
@router.get("/node-tokens/", response_model=list[NodeTokenInfo], include_in_schema=False)
def list_node_tokens(
    session: SessionDep,
    _admin: AdminCaller,
    include_revoked: Annotated[bool, Query(description="List revoked tokens too.")] = False,
) -> list[NodeTokenInfo]:
    """List the stored node tokens, oldest first, without the tokens themselves."""
    records = node_service.list_node_tokens(session=session, include_revoked=include_revoked)
    return [NodeTokenInfo.model_validate(record) for record in records]


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No node token with this id."}
}


@router.delete(
    "/node-tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a node token (admin)",
    responses=_NOT_FOUND,
)
@router.delete(
    "/node-tokens/{token_id}/", status_code=status.HTTP_204_NO_CONTENT, include_in_schema=False
)
def revoke_node_token(
    token_id: Annotated[int, Path(ge=0, le=2**63 - 1, description="The token's id.")],
    session: SessionDep,
    _admin: AdminCaller,
) -> None:
    """Revoke a node token: its node's reports get 401 from now on, and the node turns stale.

    Revoking a revoked token changes nothing.
    """
    node_service.revoke_node_token(session=session, token_id=token_id)
