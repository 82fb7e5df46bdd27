"""The installed FLOps tree: its version, its runtime requirements and the code images carry.

The learner and aggregator images carry the FLOps runtime code (the SDK `flops_utils`, the
bottom package `flops_core`, `flops_learner`, `flops_aggregator`, `flops_data_server`) as
source folders next to this package, and the pinned `[project.dependencies]` of FLOps' own
`pyproject.toml` (read from the installed distribution's metadata when the tree has no
`pyproject.toml`), less what only the manager needs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from flops_core.errors import FlopsError

__all__ = [
    "MANAGER_ONLY_DISTRIBUTIONS",
    "RUNTIME_LABEL",
    "RUNTIME_PACKAGES",
    "FlopsTree",
    "RuntimeSourceError",
    "locate_flops_tree",
]


class RuntimeSourceError(FlopsError):
    """Raised when the FLOps runtime code or its Containerfiles cannot be found; permanent."""


#: The FLOps packages a learner or aggregator imports, copied into every project image.
RUNTIME_PACKAGES: tuple[str, ...] = (
    "flops_utils",
    "flops_core",
    "flops_learner",
    "flops_aggregator",
    "flops_data_server",
)

#: Runtime dependencies only the manager uses; images get them only if something pulls them.
MANAGER_ONLY_DISTRIBUTIONS = frozenset({"fastapi", "uvicorn", "sqlalchemy", "docker"})

_DISTRIBUTION = "flops"

RUNTIME_LABEL = "io.flops.runtime"
"""Label of project images: the `FlopsTree.runtime_fingerprint()` of the code they carry."""


@dataclass(frozen=True)
class FlopsTree:
    """Where the FLOps code lives and what its runtime requires.

    Parameters
    ----------
    root : Path
        The folder holding `image_builder/`, `flops_utils/`, ...
    version : str
        The FLOps version, e.g. `0.1.0`.
    runtime_requirements : tuple[str, ...]
        The pinned runtime requirements images need, as written in `pyproject.toml`.
    dev_pins : dict[str, str]
        The `dev` extra's requirements by canonical name (where flavour libraries are pinned).
    """

    root: Path
    version: str
    runtime_requirements: tuple[str, ...]
    dev_pins: dict[str, str]

    def package_dirs(self) -> dict[str, Path]:
        """The source folder of each of `RUNTIME_PACKAGES`.

        Raises
        ------
        RuntimeSourceError
            When one is missing.
        """
        dirs = {name: self.root / name for name in RUNTIME_PACKAGES}
        missing = [name for name, path in dirs.items() if not (path / "__init__.py").is_file()]
        if missing:
            raise RuntimeSourceError(
                f"the FLOps runtime code is incomplete: {', '.join(missing)} not found in "
                f"{self.root}; run the image builder from a FLOps source tree or image"
            )
        return dirs

    def runtime_fingerprint(self) -> str:
        """A digest of the runtime code and pins images carry (16 hex characters).

        Images of the same commit built by another FLOps runtime (an upgrade, a changed
        source tree) have another fingerprint, so the manager does not reuse them.
        """
        digest = hashlib.sha256()
        for line in self.runtime_requirements:
            digest.update(line.encode() + b"\n")
        for name, folder in sorted(self.package_dirs().items()):
            for path in sorted(folder.rglob("*.py")):
                digest.update(f"{name}/{path.relative_to(folder).as_posix()}\n".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()[:16]


def locate_flops_tree(root: Path | None = None) -> FlopsTree:
    """Find the FLOps tree this package belongs to (or the one at `root`).

    Raises
    ------
    RuntimeSourceError
        When neither a `pyproject.toml` of FLOps nor the installed distribution's metadata
        gives the runtime requirements.
    """
    root = (root or Path(__file__).resolve().parent.parent).absolute()
    pyproject = root / "pyproject.toml"
    project = _read_project(pyproject) if pyproject.is_file() else None
    if project is not None:
        version = str(project.get("version", "0"))
        runtime = [str(line) for line in project.get("dependencies", [])]
        dev = [str(line) for line in project.get("optional-dependencies", {}).get("dev", [])]
    else:
        try:
            version = importlib.metadata.version(_DISTRIBUTION)
            lines = importlib.metadata.requires(_DISTRIBUTION) or []
        except importlib.metadata.PackageNotFoundError as e:
            raise RuntimeSourceError(
                f"cannot tell the FLOps runtime requirements: no pyproject.toml in {root} "
                "and the flops distribution is not installed"
            ) from e
        runtime = [line for line in lines if "extra ==" not in line]
        dev = [line.split(";")[0].strip() for line in lines if 'extra == "dev"' in line]
    return FlopsTree(
        root=root,
        version=version,
        runtime_requirements=tuple(
            line for line in runtime if _name(line) not in MANAGER_ONLY_DISTRIBUTIONS
        ),
        dev_pins={_name(line): line for line in dev},
    )


def _read_project(path: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RuntimeSourceError(f"cannot read {path}: {e}") from e
    project = data.get("project")
    if isinstance(project, dict) and project.get("name") == _DISTRIBUTION:
        return project
    return None


def _name(line: str) -> str:
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement as e:
        raise RuntimeSourceError(f"invalid FLOps runtime requirement {line!r}") from e
