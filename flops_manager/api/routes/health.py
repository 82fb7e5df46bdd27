"""`GET /api/flops/health`: is the manager up, and are the components it needs reachable."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from flops_core.logs import get_logger
from flops_manager.api.deps import ContextDep, ManagerContext

__all__ = ["Health", "check_health", "router"]

_log = get_logger("manager.api")

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The manager's health; `degraded` when the database or any component check fails."""

    status: Literal["ok", "degraded"] = Field(
        description="`ok` when everything below is ok, else `degraded` (HTTP 503)."
    )
    version: str = Field(description="Version of the FLOps manager.")
    database: str = Field(description="`ok`, or the kind of error a `SELECT 1` raised.")
    components: dict[str, str] = Field(
        default_factory=dict,
        description="Other components (orchestrator, MLflow, ...): `ok` or what is wrong.",
    )


def _database_status(context: ManagerContext) -> str:
    if context.database is None:
        return "not open"
    try:
        with context.database.session() as session:
            session.execute(text("SELECT 1"))
    except Exception as e:
        # The details may name hosts or users: they go to the log, not to this public page.
        _log.warning("health: database check failed: %s", e)
        return f"error: {type(e).__name__}"
    return "ok"


def check_health(*, context: ManagerContext, version: str) -> Health:
    """Check the database and every registered component.

    Parameters
    ----------
    context : ManagerContext
        The manager's context; its `health_checks` return (name, detail, healthy?).
    version : str
        The manager's version, reported as is.

    Returns
    -------
    Health
        The overall status and each part's status.
    """
    database = _database_status(context)
    healthy = database == "ok"
    components: dict[str, str] = {}
    for health_check in context.health_checks:
        try:
            name, detail, ok = health_check()
        except Exception as e:
            name = getattr(health_check, "__name__", "component")
            detail, ok = f"error: {type(e).__name__}", False
            _log.warning("health: check %s raised: %s", name, e)
        components[name] = "ok" if ok else detail
        healthy = healthy and ok
    return Health(
        status="ok" if healthy else "degraded",
        version=version,
        database=database,
        components=components,
    )


@router.get(
    "/health",
    response_model=Health,
    summary="Health of the manager (no authentication)",
    responses={503: {"model": Health, "description": "The database or a component is down."}},
)
def health(context: ContextDep, request: Request, response: Response) -> Health:
    """Report whether the manager and its components work; 503 when degraded."""
    result = check_health(context=context, version=str(request.app.version))
    if result.status != "ok":
        response.status_code = 503
    return result
