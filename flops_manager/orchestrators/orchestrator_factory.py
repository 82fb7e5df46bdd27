"""Create the orchestrator backend the configuration names (`local`, `docker`, `oakestra`)."""

from __future__ import annotations

from typing import Any

from flops_manager.orchestrators.docker_orchestrator import DockerOrchestrator
from flops_manager.orchestrators.local_orchestrator import LocalOrchestrator
from flops_manager.orchestrators.oakestra_orchestrator import OakestraOrchestrator
from flops_manager.orchestrators.orchestrator import Orchestrator

__all__ = ["ORCHESTRATOR_KINDS", "create_orchestrator"]

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
