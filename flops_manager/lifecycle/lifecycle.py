"""All projects of a manager: start their runners, cancel them, route events, recover."""

from __future__ import annotations

import threading
from typing import Any

from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_manager.db import Database, Project
from flops_manager.lifecycle.embedded_stack import SYSTEM_PROJECT
from flops_manager.lifecycle.mlflow_runs import end_running_runs
from flops_manager.lifecycle.project_runner import ProjectRunner
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext
from flops_manager.lifecycle.teardown import (
    UNDEPLOY_TIMEOUT_S,
    ServicesNotStoppedError,
    undeploy_live,
)
from flops_manager.orchestrators import OrchestratorError
from flops_manager.schemas import ACTIVE_STATES, ProjectCreate, ProjectState

__all__ = ["ProjectLifecycle"]

_log = get_logger("manager.lifecycle")


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
        self._recovered: list[str] = []
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
        and every service recorded for it is undeployed; so is any project service the
        orchestrator still runs that no project accounts for, and their MLflow runs are
        ended FAILED once MLflow is up (`end_recovered_runs`). Credentials an older manager
        stored with repo URLs are removed. Returns how many projects were recovered.
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
        self._recovered = [project_id for project_id, _ in stale]
        self._redact_stored_repo_urls()
        self._forget_stopped_inference()
        self._stop_orphans()
        return len(stale)

    def _redact_stored_repo_urls(self) -> None:
        """Remove the credentials a manager before this one stored with repo URLs."""
        with self.database.session() as session:
            projects = session.query(Project).filter(Project.repo_url.contains("@")).all()
            changed = [p for p in projects if redact_url(p.repo_url) != p.repo_url]
            for project in changed:
                project.repo_url = redact_url(project.repo_url)
        if changed:
            _log.warning("removed the credentials stored with %s projects' repo URLs", len(changed))

    def end_recovered_runs(self) -> None:
        """End FAILED the MLflow runs the recovered projects left RUNNING (MLflow is up now)."""
        for project_id in self._recovered:
            end_running_runs(self.context.stack.tracking_url, project_id, "FAILED")
        self._recovered = []

    def _stop_orphans(self) -> None:
        """Undeploy project services the orchestrator still runs but no project accounts for.

        A manager killed between deploying a service and recording it leaves a service that
        no project lists; after `recover`, the only project services that may still run are
        the inference services of completed projects.
        """
        with self.database.session() as session:
            kept = {
                s.service_id
                for p in session.query(Project).filter(Project.state == "completed")
                for s in p.services
                if s.undeployed_at is None
            }
        try:
            running = self.context.orchestrator.list_services()
        except OrchestratorError as e:
            _log.warning("cannot list the orchestrator's services to stop orphans: %s", e)
            return
        for state in running:
            if state.project_id == SYSTEM_PROJECT or state.status.terminal:
                continue
            if state.service_id in kept:
                continue
            _log.warning(
                "project=%s stopping its %s %s: a previous manager left it running",
                state.project_id, state.role, state.service_id,
            )  # fmt: skip
            try:
                self.context.orchestrator.undeploy(state.service_id, timeout=UNDEPLOY_TIMEOUT_S)
            except OrchestratorError as e:
                _log.error("project=%s cannot stop %s: %s", state.project_id, state.service_id, e)

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

    def shutdown(self, timeout: float = 30.0, *, reason: str = "the manager was stopped") -> None:
        """Stop every running project and wait for its runner.

        The projects become `failed` with `reason` and the state they were in (nobody asked
        to cancel them); their services are undeployed and their MLflow runs ended KILLED.
        """
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            if runner.is_alive():
                runner.cancel(stopped_by=reason)
        for runner in runners:
            runner.join(timeout)
