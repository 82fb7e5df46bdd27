"""All projects of a manager: start their runners, cancel them, route events, recover."""

from __future__ import annotations

import threading
from typing import Any

from flops_manager.db import Database, Project
from flops_manager.lifecycle.project_runner import ProjectRunner, RunnerContext
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.teardown import ServicesNotStoppedError, undeploy_live
from flops_manager.orchestrators import OrchestratorError
from flops_manager.schemas import ACTIVE_STATES, ProjectCreate, ProjectState

__all__ = ["ProjectLifecycle"]


class ProjectLifecycle:
    """Runs one `ProjectRunner` thread per active project.

    Parameters
    ----------
    database : Database
        Where projects, their events and services are recorded.
    context : RunnerContext
        What the runners use (orchestrator, environment builder, embedded stack, ...).
    """

    def __init__(self, *, database: Database, context: RunnerContext) -> None:
        self.database = database
        self.context = context
        self._runners: dict[str, ProjectRunner] = {}
        self._lock = threading.Lock()

    def start(self, project_id: str, *, body: ProjectCreate, repo_url: str, token: str) -> None:
        """Start carrying a freshly created project through its lifecycle."""
        runner = ProjectRunner(
            context=self.context,
            store=ProjectStore(self.database, project_id),
            body=body,
            repo_url=repo_url,
            callback_token=token,
        )
        with self._lock:
            self._runners[project_id] = runner
        runner.start()

    def cancel(self, project_id: str) -> bool:
        """Cancel a running project; False if it has no runner (already final)."""
        with self._lock:
            runner = self._runners.get(project_id)
        if runner is None or not runner.is_alive():
            return False
        runner.cancel()
        return True

    def stop_services(self, project_id: str) -> list[str]:
        """Undeploy what a finished project still runs (its inference service); their ids.

        Raises
        ------
        ServicesNotStoppedError
            The orchestrator could not undeploy one of them; it stays recorded as running.
        """
        store = ProjectStore(self.database, project_id)
        done = undeploy_live(store, self.context.orchestrator)
        for _, role in done.stopped:
            store.event(f"{role}_stopped", f"the {role} service was stopped by request")
        if done.failed:
            raise ServicesNotStoppedError(
                "could not stop "
                + "; ".join(f"the {role} service {sid}: {e}" for sid, role, e in done.failed)
                + "; try again later"
            )
        return [service_id for service_id, _ in done.stopped]

    def deliver(self, project_id: str, event: dict[str, Any]) -> None:
        """Hand an event a service reported to the project's runner."""
        with self._lock:
            runner = self._runners.get(project_id)
        if runner is not None:
            runner.events.put(event)

    def wait(self, project_id: str, timeout: float | None = None) -> None:
        """Wait for a project's runner to finish (tests, shutdown)."""
        with self._lock:
            runner = self._runners.get(project_id)
        if runner is not None:
            runner.join(timeout)

    def recover(self) -> int:
        """After a restart: end every project left active, undeploying what it started.

        A project that was running when the manager stopped cannot be followed again (its
        services' events went to the old process), so it is marked `failed` with the reason,
        and every service recorded for it is undeployed. Returns how many were recovered.
        """
        with self.database.session() as session:
            stale = [
                (p.id, p.state)
                for p in session.query(Project).filter(
                    Project.state.in_([s.value for s in ACTIVE_STATES])
                )
            ]
        for project_id, state in stale:
            store = ProjectStore(self.database, project_id)
            undeploy_live(store, self.context.orchestrator)
            store.transition(
                ProjectState.FAILED,
                f"the manager restarted while the project was {state}; "
                "its services were stopped — submit the project again",
            )
        self._forget_stopped_inference()
        return len(stale)

    def _forget_stopped_inference(self) -> None:
        """Completed projects whose inference service did not survive the restart say so."""
        with self.database.session() as session:
            finished = [
                p.id for p in session.query(Project).filter(Project.state == "completed")
                if any(s.undeployed_at is None for s in p.services)
            ]  # fmt: skip
        for project_id in finished:
            store = ProjectStore(self.database, project_id)
            for service_id, role in store.live_services():
                try:
                    alive = not self.context.orchestrator.status(service_id).status.terminal
                except OrchestratorError:
                    alive = False
                if not alive:
                    store.mark_undeployed(service_id)
                    store.event(f"{role}_stopped", f"the {role} service stopped with the manager")

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every running project and wait for its runner."""
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            if runner.is_alive():
                runner.cancel()
        for runner in runners:
            runner.join(timeout)
