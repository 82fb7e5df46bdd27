"""`DELETE /api/flops/database` (original FLOps): forget every finished project, nothing else.

The original manager dropped every collection of its database. Here that would also drop the
API tokens and the records of services still running (which then could never be undeployed),
so the reset is narrower: it refuses while any project is active or any recorded service is
still deployed, and then deletes the finished projects (completed, failed, cancelled) with
their events and service records. API tokens, MLflow runs and registered models, built
environments and images, and the data on the data servers stay, and so do the mock-data jobs
that pushed that data: they are how it is deleted again (`DELETE /api/flops/mocks/{id}`).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flops_core.logs import get_logger
from flops_manager.db import Project, ProjectEvent, ProjectService
from flops_manager.schemas import ACTIVE_STATES
from flops_manager.services.projects import ProjectConflictError

__all__ = ["KEPT", "DatabaseResetConflictError", "reset_database"]

_log = get_logger("manager.api")

#: What a reset keeps, in words for the reply.
KEPT = (
    "API tokens, MLflow runs and registered models, built environments and images, "
    "mock-data jobs and their data"
)


class DatabaseResetConflictError(ProjectConflictError):
    """Raised when the database cannot be reset because projects or services are still live."""


def reset_database(*, session: Session) -> int:
    """Delete every finished project with its events and service records; return how many.

    Parameters
    ----------
    session : Session
        The request's database session; the caller commits.

    Raises
    ------
    DatabaseResetConflictError
        A project is active, or a recorded service was never undeployed (409).
    """
    active = list(
        session.scalars(
            select(Project.id).where(Project.state.in_([s.value for s in ACTIVE_STATES]))
        )
    )
    if active:
        shown = ", ".join(active[:10]) + (", ..." if len(active) > 10 else "")
        raise DatabaseResetConflictError(
            f"cannot reset the database: {len(active)} project(s) are active ({shown}); "
            "cancel them first with DELETE /api/flops/projects/{id}"
        )
    live = list(
        session.scalars(
            select(ProjectService.project_id).where(ProjectService.undeployed_at.is_(None))
        )
    )
    if live:
        shown = ", ".join(sorted(set(live))[:10])
        raise DatabaseResetConflictError(
            f"cannot reset the database: services of project(s) {shown} were never undeployed "
            "and may still run; a reset would lose track of them (see the manager's log)"
        )
    ids = list(session.scalars(select(Project.id)))
    if ids:
        session.execute(delete(ProjectEvent).where(ProjectEvent.project_id.in_(ids)))
        session.execute(delete(ProjectService).where(ProjectService.project_id.in_(ids)))
        session.execute(delete(Project).where(Project.id.in_(ids)))
    _log.warning("database reset: deleted %s finished projects (kept %s)", len(ids), KEPT)
    return len(ids)
