"""What a running manager owns besides its API: orchestrator, environments, stack, projects."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flops_core.logs import get_logger
from flops_core.repos import RepoPolicy
from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.environments import EnvironmentBuilder
from flops_manager.lifecycle.embedded_stack import EmbeddedStack, StackError
from flops_manager.lifecycle.image_stage import ImageSettings
from flops_manager.lifecycle.lifecycle import ProjectLifecycle
from flops_manager.lifecycle.runner_context import RunnerContext
from flops_manager.orchestrators import Orchestrator, orchestrators_from_settings
from flops_manager.services.nodes import RegisteredNode, issue_simulated_node_tokens, list_nodes

__all__ = ["ManagerRuntime", "registered_nodes", "simulated_node_tokens"]

_log = get_logger("manager.runtime")
_HEALTH_TTL_S = 2.0


@dataclass
class ManagerRuntime:
    """The parts that carry projects; built from settings when the manager starts."""

    orchestrator: Orchestrator
    stack: EmbeddedStack
    lifecycle: ProjectLifecycle
    stack_orchestrator: Orchestrator | None = None
    """Runs the shared services when projects run elsewhere (container backends)."""
    stack_error: str | None = None
    _orchestrator_health: tuple[float, tuple[str, str, bool]] | None = None

    @classmethod
    def start(cls, settings: Settings, database: Database) -> ManagerRuntime:
        """Build every part, end projects a previous manager left active, start the stack.

        The shared services (MLflow, data servers) start on a background thread so that the
        API answers at once; health reports them as starting until they answer.
        """
        data_dir = settings.data_dir
        images: ImageSettings | None = None
        built = orchestrators_from_settings(settings)
        orchestrator, stack_orchestrator = built.projects, built.stack
        if settings.uses_images:
            images = ImageSettings.from_settings(settings)
        # Where learners go to registered nodes, the nodes are real hosts: no simulated ones,
        # and those an earlier embedded default registered (at 127.0.0.1) are forgotten.
        places_on_nodes = orchestrator.capabilities.places_on_nodes
        if places_on_nodes:
            simulated_node_tokens(database, [])
        stack = EmbeddedStack(
            orchestrator=stack_orchestrator or orchestrator,
            data_dir=data_dir,
            mlflow_port=settings.mlflow_port,
            data_server_port=settings.data_server_port,
            nodes=0 if places_on_nodes else settings.local_nodes,
            tracking_uri=settings.tracking_uri,
            mlflow_host=settings.mlflow_host,
            manager_url=settings.callback_base_url,
            node_tokens=partial(simulated_node_tokens, database),
        )
        context = RunnerContext(
            orchestrator=orchestrator,
            builder=EnvironmentBuilder(
                data_dir / "environments",
                runtime_python=Path(sys.executable),
                pip_timeout=900.0,
            ),
            stack=stack,
            repo_policy=RepoPolicy(
                allowed_schemes=settings.allowed_repo_schemes,
                allow_local=settings.allow_local_repos,
            ),
            work_dir=data_dir / "projects",
            callback_base_url=settings.callback_base_url,
            images=images,
            image_registry=settings.registry,
            configured_clusters=tuple(settings.clusters),
            schedule_timeout_s=settings.oakestra_schedule_timeout_s,
            public_tracking_url=settings.public_tracking_uri,
            nodes=partial(registered_nodes, database, settings.node_stale_after_s),
        )
        lifecycle = ProjectLifecycle(database=database, context=context)
        runtime = cls(orchestrator, stack, lifecycle, stack_orchestrator=stack_orchestrator)
        recovered = runtime.lifecycle.recover()
        if recovered:
            _log.warning("ended %s projects left active by a previous manager", recovered)
        threading.Thread(target=runtime._start_stack, name="embedded-stack", daemon=True).start()
        return runtime

    def health(self) -> tuple[str, str, bool]:
        """The stack's health for `GET /api/flops/health`."""
        if self.stack_error:
            return "tracking", self.stack_error, False
        ok, message = self.stack.health()
        if not ok and not self.stack.started:
            return "tracking", f"starting ({message})", True
        return "tracking", message, ok

    def orchestrator_health(self) -> tuple[str, str, bool]:
        """The orchestrator's health for `GET /api/flops/health`, reused for two seconds."""
        cached = self._orchestrator_health
        now = time.monotonic()
        if cached is None or now - cached[0] > _HEALTH_TTL_S:
            health = self.orchestrator.health()
            cached = (now, ("orchestrator", health.message, health.ok))
            self._orchestrator_health = cached
        return cached[1]

    def stop(self, reason: str = "the manager was stopped") -> None:
        """End running projects (`failed` with `reason`), stop the shared and other services."""
        self.lifecycle.shutdown(reason=reason)
        self.stack.stop()
        self.orchestrator.close()
        if self.stack_orchestrator is not None:
            self.stack_orchestrator.close()

    def _start_stack(self) -> None:
        try:
            self.stack.ensure_started()
        except StackError as e:
            self.stack_error = str(e)
            _log.error("embedded stack failed to start: %s", e)
            return
        self.lifecycle.end_recovered_runs()


def registered_nodes(database: Database, stale_after_s: float) -> list[RegisteredNode]:
    """The learner nodes registered now, sorted by name, stale ones marked."""
    with database.session() as session:
        return list_nodes(session=session, stale_after_s=stale_after_s)


def simulated_node_tokens(database: Database, names: Sequence[str]) -> Mapping[str, str]:
    """Fresh node tokens for the embedded default's data servers (earlier ones revoked)."""
    with database.session() as session:  # commits when it ends
        return issue_simulated_node_tokens(session=session, names=names)
