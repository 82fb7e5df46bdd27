"""Projects as the API sees them: create, read, cancel, and events reported by services.

Plain functions with keyword-only arguments; the routes stay thin. A customer sees only its
own projects: another customer's project is reported as not found, not as forbidden, so that
project ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flops_core.api_tokens import generate_token, hash_token, tokens_match
from flops_core.errors import PermanentError
from flops_core.redact import redact_url
from flops_core.vocabulary import FINAL_STATES
from flops_manager.db import Project, ProjectEvent
from flops_manager.db.models import iso_utc
from flops_manager.schemas import ACTIVE_STATES, ProjectCreate, ProjectState
from flops_manager.services.tokens import Caller

__all__ = [
    "ProjectConflictError",
    "ProjectNotFoundError",
    "authorize_callback",
    "create_project",
    "event_view",
    "get_project",
    "list_events",
    "project_view",
    "record_reported_event",
]


class ProjectNotFoundError(PermanentError, LookupError):
    """Raised when a project does not exist or belongs to another customer."""

    def __init__(self, project_id: str) -> None:
        super().__init__(f"project {project_id} not found")
        self.project_id = project_id


class ProjectConflictError(PermanentError, RuntimeError):
    """Raised when a request does not fit the project's state (e.g. cancel a finished one)."""


def create_project(
    *, session: Session, caller: Caller, body: ProjectCreate,
    check: Callable[[ProjectCreate], object] | None = None,
) -> tuple[Project, str]:  # fmt: skip
    """Persist a new project in `pending`; return it and its services' callback token.

    A customer's project belongs to the token's customer; `customerID`, when given, must name
    it. The admin may create projects for any customer. `body.customer_id` is set to the owner.

    Parameters
    ----------
    check : Callable[[ProjectCreate], object] | None
        Called with the body once its owner is set, before anything is stored (the learners'
        placement on the registered nodes); what it raises propagates.

    Raises
    ------
    PermissionError
        `customerID` names another customer and the caller is not the admin.
    """
    customer = body.customer_id
    named = "customer_id" in body.model_fields_set
    if not caller.is_admin:
        if named and customer != caller.customer_id:
            raise PermissionError(f"customerID {customer!r} does not match the token's customer")
        customer = caller.customer_id
    # The runner names images and data-tag namespaces after the body's owner: the real one.
    body.customer_id = customer
    if check is not None:
        check(body)
    token = generate_token()
    project = Project(
        customer_id=customer,
        state=ProjectState.PENDING.value,
        message="accepted",
        config=body.model_dump(mode="json", by_alias=False, exclude={"ml_repo_url"}),
        # Never the credential: the runner clones with the URL it was handed in memory.
        repo_url=redact_url(body.ml_repo_url),
        callback_token_hash=hash_token(token),
    )
    project.events.append(ProjectEvent(kind="state", type="pending", message="accepted"))
    session.add(project)
    session.flush()
    return project, token


def get_project(*, session: Session, caller: Caller, project_id: str) -> Project:
    """The project, if the caller may see it."""
    project = session.get(Project, project_id)
    if project is None or not (caller.is_admin or project.customer_id == caller.customer_id):
        raise ProjectNotFoundError(project_id)
    return project


def list_events(*, session: Session, project_id: str, after: int = 0) -> list[ProjectEvent]:
    """The project's state transitions and events with an id above `after`, in order."""
    query = (
        select(ProjectEvent)
        .where(ProjectEvent.project_id == project_id, ProjectEvent.id > after)
        .order_by(ProjectEvent.id)
    )
    return list(session.scalars(query))


def authorize_callback(*, session: Session, project_id: str, token: str | None) -> Project:
    """The project whose services hold `token`; `ProjectNotFoundError` otherwise.

    A callback token travels with the project's services (in Oakestra, inside their SLAs), so
    it stops working when the project reaches a final state.
    """
    project = session.get(Project, project_id)
    if (
        project is None
        or project.state in FINAL_STATES
        or not token
        or not project.callback_token_hash
        or not tokens_match(hash_token(token), project.callback_token_hash)
    ):
        raise ProjectNotFoundError(project_id)
    return project


def record_reported_event(*, session: Session, project: Project, event: dict[str, Any]) -> None:
    """Store an event a service reported (as documented in docs/events.md)."""
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    event_type = str(event.get("type", "unknown"))[:64]
    message = str(data.get("reason", "")) if event_type == "failed" else ""
    project.events.append(
        ProjectEvent(
            kind="event",
            type=event_type,
            source=str(event.get("source", "service"))[:128],
            message=message,
            data=data,
        )
    )


def project_view(project: Project, *, detail: bool = False) -> dict[str, Any]:
    """The JSON form of a project; the repo URL without credentials."""
    view: dict[str, Any] = {
        "id": project.id,
        "customer_id": project.customer_id,
        "state": project.state,
        "message": project.message,
        "active": ProjectState(project.state) in ACTIVE_STATES,
        "repo_url": redact_url(project.repo_url),
        "commit": project.commit,
        "created_at": iso_utc(project.created_at),
        "updated_at": iso_utc(project.updated_at),
    }
    if detail:
        view["config"] = project.config
        view["result"] = project.result
        view["services"] = [
            {
                "service_id": s.service_id,
                "role": s.role,
                "deployed_at": iso_utc(s.deployed_at),
                "undeployed_at": iso_utc(s.undeployed_at),
            }
            for s in project.services
        ]
    return view


def event_view(event: ProjectEvent) -> dict[str, Any]:
    """The JSON form of one event."""
    return {
        "id": event.id,
        "timestamp": iso_utc(event.timestamp),
        "kind": event.kind,
        "type": event.type,
        "source": event.source,
        "message": event.message,
        "data": event.data,
    }
