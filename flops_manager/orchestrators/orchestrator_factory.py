"""Create the orchestrator backend the configuration names (`local`, `docker`, `oakestra`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from flops_manager.core.config import Settings
from flops_manager.orchestrators.docker_orchestrator import DockerOrchestrator
from flops_manager.orchestrators.local_orchestrator import LocalOrchestrator
from flops_manager.orchestrators.oakestra_orchestrator import OakestraOrchestrator
from flops_manager.orchestrators.orchestrator import Orchestrator

__all__ = [
    "ORCHESTRATOR_KINDS",
    "ManagerOrchestrators",
    "create_orchestrator",
    "orchestrators_from_settings",
]

ORCHESTRATOR_KINDS: dict[str, type[Orchestrator]] = {
    LocalOrchestrator.kind: LocalOrchestrator,
    DockerOrchestrator.kind: DockerOrchestrator,
    OakestraOrchestrator.kind: OakestraOrchestrator,
}
"""The backends that exist, by the name configuration uses."""


def create_orchestrator(kind: str, **settings: Any) -> Orchestrator:
    """Return a new orchestrator of `kind`, built with `settings` as keyword arguments.

    Parameters
    ----------
    kind : str
        The backend's name (case-insensitive): `local`, `docker` or `oakestra`.
    **settings : Any
        The backend's constructor arguments, e.g. `state_dir=` for `local`, `base_url=` and
        `instance=` for `docker`, `base_url=`, `username=`, `password=` for `oakestra`.

    Raises
    ------
    ValueError
        `kind` is unknown, or `settings` do not fit it.
    """
    name = kind.strip().lower()
    backend = ORCHESTRATOR_KINDS.get(name)
    if backend is None:
        valid = ", ".join(sorted(ORCHESTRATOR_KINDS))
        raise ValueError(f"orchestrator kind {kind!r} is unknown; valid kinds: {valid}")
    try:
        return backend(**settings)
    except TypeError as e:
        raise ValueError(f"invalid settings for the {name} orchestrator: {e}") from e


@dataclass(frozen=True)
class ManagerOrchestrators:
    """The orchestrators a manager works with, built from its settings."""

    projects: Orchestrator
    """Runs the project services: image builder, aggregators, learners, inference server."""
    stack: Orchestrator | None = None
    """Runs the shared services (MLflow, data servers) as local processes when project
    services run elsewhere; `None`: `projects` runs them too."""


def orchestrators_from_settings(settings: Settings) -> ManagerOrchestrators:
    """Build the orchestrator `settings.orchestrator` names, and one for the shared services.

    Parameters
    ----------
    settings : Settings
        The manager's settings: the backend, its address and account, the data directory
        (the `local` backend keeps its records under `<data_dir>/services`) and the
        clusters (`local` makes each a cluster of one node, `<name>node`).
    """
    state_dir = settings.data_dir / "services"
    if settings.orchestrator == "local":
        clusters = {name: [f"{name}node"] for name in settings.clusters} or None
        return ManagerOrchestrators(
            create_orchestrator("local", state_dir=state_dir, clusters=clusters)
        )
    if settings.orchestrator == "docker":
        # One label per data directory: a restarted manager finds its own containers,
        # and managers sharing a Docker host do not see each other's.
        digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]
        projects = create_orchestrator(
            "docker", base_url=settings.docker_host, instance=f"flops-{digest}"
        )
    else:
        assert settings.oakestra_url and settings.oakestra_username
        assert settings.oakestra_password is not None
        projects = create_orchestrator(
            "oakestra",
            base_url=settings.oakestra_url,
            username=settings.oakestra_username,
            password=settings.oakestra_password.get_secret_value(),
            retries=settings.oakestra_retries,
            backoff_s=settings.oakestra_backoff_s,
            poll_s=settings.oakestra_poll_s,
        )
    # Project services run elsewhere; the shared services stay local processes.
    return ManagerOrchestrators(projects, stack=create_orchestrator("local", state_dir=state_dir))
