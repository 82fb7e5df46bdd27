"""The API's `Annotated` dependencies: the manager's context, settings, sessions, the caller.

Authentication: clients send `Authorization: Bearer <token>`. The configured admin token
(`FLOPS_ADMIN_TOKEN`, compared in constant time) makes the caller the admin, customer
`"Admin"`; any other token is looked up by its SHA-256 hash among the stored, unrevoked API
tokens. The bare token without the `Bearer ` prefix is accepted too, because the original
FLOps CLI sends it that way. With `accept_oakestra_tokens`, a token that is neither and looks
like a JWT is taken for an Oakestra access token (what `oak addon flops` sends) and checked
with the Oakestra root (`services/oakestra_auth.py`): the Oakestra user is the customer.
FLOps tokens are tried first because that costs one local lookup and no network call.
Node tokens (`services/node_tokens.py`) live in their own table, which this lookup never
reads: they authenticate only a node's own report, through `NodeTokenDep`.

The event loop: FastAPI runs a plain `def` dependency on its thread pool, an `async def` one
on the event loop. Dependencies that only read the app's context are `async def`, so that a
request does not queue for a pool thread once per dependency (under load each hop waits
behind every request in flight); those that touch the database, hash a token or ask the
Oakestra root (`get_session`, `get_current_caller`) are plain `def` and run on the pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from flops_core.logs import get_logger
from flops_manager.api.errors import (
    ManagerNotReadyError,
    NotAuthenticatedError,
    PermissionDeniedError,
)
from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.lifecycle.runtime import ManagerRuntime
from flops_manager.services.oakestra_auth import OakestraTokenVerifier, looks_like_jwt
from flops_manager.services.tokens import Caller, authenticate

__all__ = [
    "AdminCaller",
    "Caller",
    "ContextDep",
    "CurrentCaller",
    "DatabaseDep",
    "HealthCheck",
    "ManagerContext",
    "NodeTokenDep",
    "RequestedCustomerId",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "get_admin_caller",
    "get_context",
    "get_current_caller",
    "get_database",
    "get_node_token",
    "get_requested_customer_id",
    "get_runtime",
    "get_session",
    "get_settings",
    "requested_customer",
]

_log = get_logger("manager.api")

#: A component's health: returns (component name, "ok" or what is wrong, healthy?).
HealthCheck = Callable[[], tuple[str, str, bool]]


@dataclass
class ManagerContext:
    """Everything a running manager shares between requests; held in `app.state.context`.

    Parameters
    ----------
    settings : Settings
        The manager's configuration, read once at the edge.
    database : Database | None
        The open database; None until the app's lifespan opens it.
    orchestrator : object | None
        Placeholder for the orchestrator backend, filled in by a later part.
    lifecycle : object | None
        Placeholder for the project lifecycle, filled in by a later part.
    health_checks : list[HealthCheck]
        Extra checks `GET /api/flops/health` runs (orchestrator, MLflow, ...).
    oakestra_verifier : OakestraTokenVerifier | None
        Checks Oakestra access tokens; built from the settings when
        `accept_oakestra_tokens` is on, else None (Oakestra tokens are then refused).
    """

    settings: Settings
    database: Database | None = None
    orchestrator: object | None = None
    lifecycle: object | None = None
    health_checks: list[HealthCheck] = field(default_factory=list)
    oakestra_verifier: OakestraTokenVerifier | None = None

    def __post_init__(self) -> None:
        if self.oakestra_verifier is None and self.settings.accept_oakestra_tokens:
            self.oakestra_verifier = OakestraTokenVerifier.from_settings(self.settings)


async def get_context(request: Request) -> ManagerContext:
    """Return the `ManagerContext` of the app serving `request`."""
    context = getattr(request.app.state, "context", None)
    if not isinstance(context, ManagerContext):
        raise RuntimeError("the app has no ManagerContext; build it with create_app()")
    return context


ContextDep = Annotated[ManagerContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    """Return the manager's settings."""
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_database(context: ContextDep) -> Database:
    """Return the open database, or raise `ManagerNotReadyError` outside the app's lifespan."""
    if context.database is None:
        raise ManagerNotReadyError("the database is not open")
    return context.database


DatabaseDep = Annotated[Database, Depends(get_database)]


def get_session(database: DatabaseDep) -> Iterator[Session]:
    """Yield one session per request; it commits before the response is sent."""
    with database.session() as session:
        yield session


# scope="function": commit (or roll back) before the response leaves, so that a client that
# got a 201 can use what it created in its very next request.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


class _BearerToken(HTTPBearer):
    """`Authorization: Bearer <token>`, also accepting the bare token (original FLOps CLI)."""

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        header = request.headers.get("Authorization", "").strip()
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "bearer":
            token = rest.strip()
        elif header and not rest:
            token = header
        else:
            return None
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token) if token else None


_bearer = _BearerToken(
    auto_error=False,
    scheme_name="FLOpsToken",
    description=(
        "An API token: `Authorization: Bearer <token>`. The configured admin token or one "
        "created with `POST /api/flops/tokens`. The bare token without `Bearer ` is accepted "
        "too (the original FLOps CLI sends it that way). With FLOPS_ACCEPT_OAKESTRA_TOKENS, an "
        "Oakestra access token works too (what `oak addon flops` sends); the Oakestra user is "
        "the customer."
    ),
)


_node_bearer = _BearerToken(
    auto_error=False,
    scheme_name="FLOpsNodeToken",
    description=(
        "A node token: `Authorization: Bearer <node token>`, created by the admin with "
        "`POST /api/flops/node-tokens` for one learner node. It authenticates only that node's "
        "reports (`PUT /api/flops/nodes/{name}`); API tokens do not work there, and node "
        "tokens work nowhere else."
    ),
)


async def get_node_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_node_bearer)],
) -> str:
    """Return the node token a node report came with, or raise `NotAuthenticatedError` (401).

    Only its presence is checked here; `services.nodes.record_report` checks the token itself.
    """
    if credentials is None:
        raise NotAuthenticatedError(
            "missing node token: send the header 'Authorization: Bearer <node token>'"
        )
    return credentials.credentials


NodeTokenDep = Annotated[str, Depends(get_node_token)]


def get_current_caller(
    context: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Return who sent the request, or raise `NotAuthenticatedError` (401).

    FLOps tokens (the admin token, stored API tokens) are tried first; then, if the manager
    accepts Oakestra tokens and this one looks like a JWT, the Oakestra root is asked.

    Parameters
    ----------
    context : ManagerContext
        The manager's context (for the configured admin token and the Oakestra verifier).
    session : Session
        The request's database session (for stored tokens).
    credentials : HTTPAuthorizationCredentials | None
        The token from the `Authorization` header, if any.

    Raises
    ------
    NotAuthenticatedError
        No token, or an unknown or revoked FLOps token (401).
    InvalidOakestraTokenError
        An Oakestra token that Oakestra does not accept, or an expired one (401).
    OakestraUserNotAllowedError
        A valid Oakestra user whose name cannot be a FLOps customer id (403).
    OakestraUnavailableError
        An Oakestra token, and the Oakestra root cannot be asked (503).
    """
    if credentials is None:
        raise NotAuthenticatedError(
            "missing API token: send the header 'Authorization: Bearer <token>'"
        )
    token = credentials.credentials
    admin_token = context.settings.admin_token
    caller = authenticate(
        session=session,
        token=token,
        admin_token=admin_token.get_secret_value() if admin_token is not None else None,
    )
    if caller is not None:
        return caller
    verifier = context.oakestra_verifier
    if verifier is not None and looks_like_jwt(token):
        session.rollback()  # end the read transaction before a network call
        return verifier.verify(token)
    _log.info("rejected an unknown or revoked API token")
    raise NotAuthenticatedError("invalid or revoked API token")


CurrentCaller = Annotated[Caller, Depends(get_current_caller)]


async def get_admin_caller(caller: CurrentCaller) -> Caller:
    """Return the caller if it is an admin, else raise `PermissionDeniedError` (403)."""
    if not caller.is_admin:
        raise PermissionDeniedError("this needs an admin token")
    return caller


AdminCaller = Annotated[Caller, Depends(get_admin_caller)]


async def get_requested_customer_id(
    request: Request,
    customer_id: Annotated[
        str | None,
        Query(
            alias="customerID",
            max_length=128,
            description="Whose resource (original FLOps); it may also come as the JSON body "
            '`{"customerID": "..."}`, as the Python oak CLI sends it. Default: the caller.',
        ),
    ] = None,
) -> str | None:
    """The `customerID` a request names: from the query string or a JSON body, or None.

    The original FLOps manager read it from a JSON body even on GET and DELETE; the Go oak CLI
    sends it as a query parameter. An empty body, or a body without `customerID`, names none.

    Raises
    ------
    RequestValidationError
        The body is not JSON, `customerID` is not a string, or query and body disagree (422).
    """
    raw = await request.body()
    from_body: str | None = None
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RequestValidationError(
                [{"loc": ("body",), "type": "value_error",
                  "msg": 'the body must be empty or a JSON object like {"customerID": "..."}'}]
            )  # fmt: skip
        value = body.get("customerID", body.get("customer_id"))
        if value is not None and not isinstance(value, str):
            raise RequestValidationError(
                [{"loc": ("body", "customerID"), "type": "string_type",
                  "msg": "customerID must be a string"}]
            )  # fmt: skip
        from_body = value
    if customer_id is not None and from_body is not None and customer_id != from_body:
        raise RequestValidationError(
            [{"loc": ("query", "customerID"), "type": "value_error",
              "msg": f"customerID is {customer_id!r} in the query but {from_body!r} in the body"}]
        )  # fmt: skip
    return customer_id if customer_id is not None else from_body


RequestedCustomerId = Annotated[str | None, Depends(get_requested_customer_id)]


def requested_customer(caller: Caller, requested: str | None) -> str:
    """The customer a request is about: `requested` if the caller may act for it, else 403.

    Parameters
    ----------
    caller : Caller
        Who sent the request; the admin may name any customer.
    requested : str | None
        The `customerID` the request names, if any; None means the caller itself.
    """
    if requested is None or requested == caller.customer_id:
        return caller.customer_id
    if not caller.is_admin:
        raise PermissionDeniedError(
            f"customerID {requested!r} does not match the token's customer {caller.customer_id!r}"
        )
    return requested


async def get_runtime(context: ContextDep) -> ManagerRuntime:
    """The parts that carry projects; 503 while the manager starts or when they are off."""
    runtime = context.lifecycle
    if not isinstance(runtime, ManagerRuntime):
        raise ManagerNotReadyError("projects cannot run on this manager right now")
    return runtime


RuntimeDep = Annotated[ManagerRuntime, Depends(get_runtime)]
