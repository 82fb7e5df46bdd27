"""Create the orchestrator backend the configuration names (`local` or `docker`)."""

from __future__ import annotations

from typing import Any

from flops_manager.orchestrators.docker_orchestrator import DockerOrchestrator
from flops_manager.orchestrators.local_orchestrator import LocalOrchestrator
from flops_manager.orchestrators.orchestrator import Orchestrator

__all__ = ["ORCHESTRATOR_KINDS", "PLANNED_ORCHESTRATOR_KINDS", "create_orchestrator"]

ORCHESTRATOR_KINDS: dict[str, type[Orchestrator]] = {
    LocalOrchestrator.kind: LocalOrchestrator,
    DockerOrchestrator.kind: DockerOrchestrator,
}
"""The backends that exist, by the name configuration uses."""

PLANNED_ORCHESTRATOR_KINDS = ("oakestra",)
"""Backends the design names that are not implemented yet."""


def create_orchestrator(kind: str, **settings: Any) -> Orchestrator:
    """Return a new orchestrator of `kind`, built with `settings` as keyword arguments.

    Parameters
    ----------
    kind : str
        The backend's name (case-insensitive): `local` or `docker`.
    **settings : Any
        The backend's constructor arguments, e.g. `state_dir=` for `local`, `base_url=` and
        `instance=` for `docker`.

    Raises
    ------
    ValueError
        `kind` is unknown or planned but not implemented, or `settings` do not fit it.
    """
    name = kind.strip().lower()
    backend = ORCHESTRATOR_KINDS.get(name)
    if backend is None:
        valid = ", ".join(sorted(ORCHESTRATOR_KINDS))
        planned = " and ".join(PLANNED_ORCHESTRATOR_KINDS)
        state = (
            "is planned but not implemented yet"
            if name in PLANNED_ORCHESTRATOR_KINDS
            else "is unknown"
        )
        verb = "is" if len(PLANNED_ORCHESTRATOR_KINDS) == 1 else "are"
        raise ValueError(
            f"orchestrator kind {kind!r} {state}; valid kinds: {valid} ({planned} {verb} planned)"
        )
    try:
        return backend(**settings)
    except TypeError as e:
        raise ValueError(f"invalid settings for the {name} orchestrator: {e}") from e
