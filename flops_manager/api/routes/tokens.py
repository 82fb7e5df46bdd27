"""API tokens (`/api/flops/tokens`, admin only) and `GET /api/flops/whoami` (any token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from flops_manager.api.deps import AdminCaller, CurrentCaller, SessionDep
from flops_manager.api.errors import ADMIN_RESPONSES, AUTH_RESPONSES, ErrorBody
from flops_manager.db.models import as_utc
from flops_manager.services import tokens as token_service
from flops_manager.services.tokens import CUSTOMER_ID_PATTERN, check_customer_id

__all__ = ["TokenCreate", "TokenCreated", "TokenInfo", "WhoAmI", "router"]

router = APIRouter(tags=["tokens"])

_CUSTOMER_ID_DESCRIPTION = (
    "The customer the token belongs to: 1-128 letters, digits or `_.@-`, starting with a "
    "letter or digit. `Admin` is reserved for the configured admin token."
)


class TokenCreate(BaseModel):
    """A new API token for a customer."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(
        min_length=1,
        max_length=128,
        description=_CUSTOMER_ID_DESCRIPTION,
        json_schema_extra={"pattern": CUSTOMER_ID_PATTERN},
        examples=["acme-lab"],
    )
    label: str = Field("", max_length=128, description="A note, e.g. who or what uses it.")
    is_admin: StrictBool = Field(
        False, description="Whether the token grants admin rights: JSON true or false only."
    )

    @field_validator("customer_id")
    @classmethod
    def _valid_customer_id(cls, value: str) -> str:
        return check_customer_id(value)


class TokenInfo(BaseModel):
    """A stored API token as listed: never the token itself, nor its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The token's id, for `DELETE /api/flops/tokens/{id}`.")
    customer_id: str = Field(description="The customer the token belongs to.")
    label: str = Field(description="The note given when the token was created.")
    is_admin: bool = Field(description="Whether the token grants admin rights.")
    created_at: datetime = Field(description="When the token was created (UTC).")
    revoked_at: datetime | None = Field(
        None, description="When the token was revoked (UTC); null while it is valid."
    )

    @field_validator("created_at", "revoked_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class TokenCreated(BaseModel):
    """A token just created: the only response that ever contains the token."""

    id: int = Field(description="The token's id, for `DELETE /api/flops/tokens/{id}`.")
    customer_id: str = Field(description="The customer the token belongs to.")
    label: str = Field(description="The note given when the token was created.")
    is_admin: bool = Field(description="Whether the token grants admin rights.")
    created_at: datetime = Field(description="When the token was created (UTC).")
    token: str = Field(
        description="The bearer token. Store it now: the manager keeps only its hash."
    )


class WhoAmI(BaseModel):
    """Who the manager takes the caller to be."""

    customer_id: str = Field(description="The customer of the token (`Admin` for the admin).")
    is_admin: bool = Field(description="Whether the token grants admin rights.")


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    summary="Create an API token (admin)",
    responses=ADMIN_RESPONSES,
)
def create_token(body: TokenCreate, session: SessionDep, _admin: AdminCaller) -> TokenCreated:
    """Create a token for a customer; the response is the only time the token is shown."""
    issued = token_service.create_token(
        session=session, customer_id=body.customer_id, label=body.label, is_admin=body.is_admin
    )
    record = issued.record
    return TokenCreated(
        id=record.id,
        customer_id=record.customer_id,
        label=record.label,
        is_admin=record.is_admin,
        created_at=as_utc(record.created_at),
        token=issued.token,
    )


@router.get(
    "/tokens",
    response_model=list[TokenInfo],
    summary="List API tokens (admin)",
    responses=ADMIN_RESPONSES,
)
def list_tokens(
    session: SessionDep,
    _admin: AdminCaller,
    include_revoked: Annotated[bool, Query(description="List revoked tokens too.")] = False,
) -> list[TokenInfo]:
    """List the stored tokens, without the tokens themselves."""
    records = token_service.list_tokens(session=session, include_revoked=include_revoked)
    return [TokenInfo.model_validate(record) for record in records]


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API token (admin)",
    responses={
        **ADMIN_RESPONSES,
        404: {"model": ErrorBody, "description": "No token with this id."},
    },
)
def revoke_token(
    token_id: Annotated[int, Path(ge=0, le=2**63 - 1, description="The token's id.")],
    session: SessionDep,
    _admin: AdminCaller,
) -> None:
    """Revoke a token: from now on it gets 401. Revoking a revoked token changes nothing."""
    token_service.revoke_token(session=session, token_id=token_id)


@router.get(
    "/whoami",
    response_model=WhoAmI,
    summary="Who the token belongs to",
    responses=AUTH_RESPONSES,
)
def whoami(caller: CurrentCaller) -> WhoAmI:
    """Return the customer and admin flag of the token sent."""
    return WhoAmI(customer_id=caller.customer_id, is_admin=caller.is_admin)
