"""Recording a project's state transitions, events and services in the database."""

from __future__ import annotations

from typing import Any

from flops_core.logs import get_logger
from flops_manager.db import Database, Project, ProjectEvent, ProjectService
from flops_manager.db.models import utcnow
from flops_manager.schemas import ProjectState

__all__ = ["ProjectStore"]

_log = get_logger("manager.projects")


class ProjectStore:
    """Small, committed writes about one project; every state change also becomes an event."""

    def __init__(self, database: Database, project_id: str) -> None:
        self.database = database
        self.project_id = project_id

    def transition(self, state: ProjectState, message: str, **result: Any) -> None:
        """Move the project to `state`, with a human-readable `message`."""
        with self.database.session() as session:
            project = session.get(Project, self.project_id)
            if project is None:
                return
            project.state = state.value
            project.message = message
            if result:
                project.result = {**project.result, **result}
            project.events.append(
                ProjectEvent(kind="state", type=state.value, message=message, data={})
            )
        _log.info("project=%s state=%s %s", self.project_id, state.value, message)

    def set_result(self, **result: Any) -> None:
        """Merge `result` into the project's result without changing its state."""
        with self.database.session() as session:
            project = session.get(Project, self.project_id)
            if project is not None:
                project.result = {**project.result, **result}

    def event(self, event_type: str, message: str = "", *, source: str = "manager",
              data: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Record an event that does not change the state."""
        with self.database.session() as session:
            session.add(
                ProjectEvent(
                    project_id=self.project_id,
                    kind="event",
                    type=event_type,
                    source=source,
                    message=message,
                    data=data or {},
                )
            )

    def set_commit(self, commit: str) -> None:
        """Record the commit the project trains."""
        with self.database.session() as session:
            project = session.get(Project, self.project_id)
            if project is not None:
                project.commit = commit

    def add_service(self, service_id: str, role: str, orchestrator: str) -> None:
        """Remember a deployed service so that it is undeployed whatever happens."""
        with self.database.session() as session:
            session.add(
                ProjectService(
                    project_id=self.project_id,
                    service_id=service_id,
                    role=role,
                    orchestrator=orchestrator,
                )
            )

    def live_services(self) -> list[tuple[str, str]]:
        """`(service_id, role)` of services not yet undeployed."""
        with self.database.session() as session:
            project = session.get(Project, self.project_id)
            if project is None:
                return []
            return [(s.service_id, s.role) for s in project.services if s.undeployed_at is None]

    def mark_undeployed(self, service_id: str) -> None:
        """Record that a service was undeployed."""
        with self.database.session() as session:
            project = session.get(Project, self.project_id)
            for service in project.services if project else []:
                if service.service_id == service_id:
                    service.undeployed_at = utcnow()

    def state(self) -> ProjectState | None:
        """The current state, or `None` if the project is gone."""
        with self.database.session() as session:
            project = session.get(Project, self.project_id)
            return ProjectState(project.state) if project else None
