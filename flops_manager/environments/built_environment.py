"""What `EnvironmentBuilder.ensure` returns: a ready venv and what to tell the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flops_core.requirements.requirement_plan import Override
from flops_manager.environments.requirement_fit import Relaxation

__all__ = ["BuiltEnvironment"]


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready environment; run `python -m flops_learner` etc. with its `python`.

    Parameters
    ----------
    path : Path
        The venv folder.
    python : Path
        The venv's `bin/python`.
    key : str
        The cache key: a hash of the installed requirements, interpreter and runtime.
    reused : bool
        Whether an existing environment was reused instead of built.
    overrides : list[Override]
        Repo requirements replaced by the runtime's versions; one project event each.
    warnings : list[str]
        What else did not go as the repo asked (Python pin, skipped lines), one line each.
    installed : list[str]
        `name==version` of what was installed into the venv on top of the runtime (the
        repo's requirement lines for environments built before relaxation existed).
    build_seconds : float
        Seconds this call took (small when reused).
    python_version : str
        The interpreter's full version.
    dependency_file : str
        The repo's dependency file the environment was made from.
    relaxed : list[Relaxation]
        Repo pins replaced by the nearest release that fits the runtime; one event each.
    """

    path: Path
    python: Path
    key: str
    reused: bool
    overrides: list[Override]
    warnings: list[str]
    installed: list[str]
    build_seconds: float
    python_version: str
    dependency_file: str
    relaxed: list[Relaxation] = field(default_factory=list)
