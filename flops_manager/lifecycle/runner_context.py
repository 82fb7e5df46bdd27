"""What a project runner works with: the shared context, and what its services run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flops_core.repos import RepoPolicy
from flops_manager.environments import EnvironmentBuilder
from flops_manager.lifecycle.embedded_stack import EmbeddedStack
from flops_manager.lifecycle.image_stage import ImageSettings
from flops_manager.orchestrators import Orchestrator
from flops_manager.services.nodes import RegisteredNode

__all__ = ["IMAGE_REPO_DIR", "RunnerContext", "ServiceRuntime"]

IMAGE_REPO_DIR = "/app"
"""Where the image builder puts the repo's code in learner and aggregator images."""


@dataclass(frozen=True)
class RunnerContext:
    """What every runner shares: where to work and with what."""

    orchestrator: Orchestrator
    builder: EnvironmentBuilder
    stack: EmbeddedStack
    repo_policy: RepoPolicy
    work_dir: Path
    callback_base_url: str
    images: ImageSettings | None = None
    """Set when services run images: they are built into this registry."""
    image_registry: str = ""
    """Registry of the project images; names the images of environment-run services where
    the orchestrator `needs_image_names`."""
    configured_clusters: tuple[str, ...] = ()
    """Clusters for hierarchical FL on backends that do not report their own (`docker`)."""
    schedule_timeout_s: float = 300.0
    """How long an orchestrator that `schedules_after_deploy` may take to start a service."""
    public_tracking_url: str | None = None
    """The MLflow URL project services are given (FLOPS_PUBLIC_TRACKING_URI); `None`: the
    stack's, the one the manager uses itself."""
    nodes: Callable[[], list[RegisteredNode]] | None = None
    """The registered learner nodes, sorted by name, fresh or stale (`list_nodes`), asked
    where the orchestrator `places_on_nodes`; `None`: no node is registered."""

    @property
    def services_tracking_url(self) -> str:
        """The MLflow URL aggregators, learners, builders and inference servers get."""
        return self.public_tracking_url or self.stack.tracking_url

    def registered_nodes(self) -> list[RegisteredNode]:
        """The registered learner nodes now (see `nodes`)."""
        return self.nodes() if self.nodes is not None else []


@dataclass(frozen=True)
class ServiceRuntime:
    """What the project's services run: a local environment, or images."""

    environment: Path | None = None
    repo_dir: Path | None = None
    learner_image: str | None = None
    aggregator_image: str | None = None

    def spec_fields(self, role: str) -> dict[str, Any]:
        """The `ServiceSpec` fields that say what to run for `role`."""
        image = self.aggregator_image if role == "aggregator" else self.learner_image
        if self.environment is not None:
            # An image name too where one is known: Oakestra's SLAs need one.
            return {"environment_path": self.environment, "working_dir": self.repo_dir,
                    "image": image}  # fmt: skip
        return {"image": image, "working_dir": Path(IMAGE_REPO_DIR)}

    @property
    def code_dir(self) -> str:
        """Where the services find the repo's code."""
        return str(self.repo_dir) if self.environment is not None else IMAGE_REPO_DIR
