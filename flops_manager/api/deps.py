"""The API's `Annotated` dependencies: the manager's context, settings, sessions, the caller.

Authentication: clients send `Authorization: Bearer <token>`. The configured admin token
(`FLOPS_ADMIN_TOKEN`, compared in constant time) makes the caller the admin, customer
`"Admin"`; any other token is looked up by its SHA-256 hash among the stored, unrevoked API
tokens. The bare token without the `Bearer ` prefix is accepted too, because the original
FLOps CLI sends it that way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from flops_manager.api.errors import (
    ManagerNotReadyError,
    NotAuthenticatedError,
    PermissionDeniedError,
)
from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.lifecycle.runtime import ManagerRuntime
from flops_manager.services.tokens import Caller, authenticate
from flops_utils.logs import get_logger

__all__ = [
    "AdminCaller",
    "Caller",
    "ContextDep",
    "CurrentCaller",
    "DatabaseDep",
    "HealthCheck",
    "ManagerContext",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "get_admin_caller",
    "get_context",
    "get_current_caller",
    "get_database",
    "get_runtime",
    "get_session",
    "get_settings",
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
    """

    settings: Settings
    database: Database | None = None
    orchestrator: object | None = None
    lifecycle: object | None = None
    health_checks: list[HealthCheck] = field(default_factory=list)


def get_context(request: Request) -> ManagerContext:
    """Return the `ManagerContext` of the app serving `request`."""
    context = getattr(request.app.state, "context", None)
    if not isinstance(context, ManagerContext):
        raise RuntimeError("the app has no ManagerContext; build it with create_app()")
    return context


ContextDep = Annotated[ManagerContext, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    """Return the manager's settings."""
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_database(context: ContextDep) -> Database:
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
        "too (the original FLOps CLI sends it that way)."
    ),
)


def get_current_caller(
    context: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Return who sent the request, or raise `NotAuthenticatedError` (401).

    Parameters
    ----------
    context : ManagerContext
        The manager's context (for the configured admin token).
    session : Session
        The request's database session (for stored tokens).
    credentials : HTTPAuthorizationCredentials | None
        The token from the `Authorization` header, if any.
    """
    if credentials is None:
        raise NotAuthenticatedError(
            "missing API token: send the header 'Authorization: Bearer <token>'"
        )
    admin_token = context.settings.admin_token
    caller = authenticate(
        session=session,
        token=credentials.credentials,
        admin_token=admin_token.get_secret_value() if admin_token is not None else None,
    )
    if caller is None:
        _log.info("rejected an unknown or revoked API token")
        raise NotAuthenticatedError("invalid or revoked API token")
    return caller


CurrentCaller = Annotated[Caller, Depends(get_current_caller)]


def get_admin_caller(caller: CurrentCaller) -> Caller:
    """Return the caller if it is an admin, else raise `PermissionDeniedError` (403)."""
    if not caller.is_admin:
        raise PermissionDeniedError("this needs an admin token")
    return caller


AdminCaller = Annotated[Caller, Depends(get_admin_caller)]


def get_runtime(context: ContextDep) -> ManagerRuntime:
    """The parts that carry projects; 503 while the manager starts or when they are off."""
    runtime = context.lifecycle
    if not isinstance(runtime, ManagerRuntime):
        raise ManagerNotReadyError("projects cannot run on this manager right now")
    return runtime


RuntimeDep = Annotated[ManagerRuntime, Depends(get_runtime)]
