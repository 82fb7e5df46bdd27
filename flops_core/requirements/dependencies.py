"""Read the dependencies of an ML repo checkout into one `DependencySpec`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from flops_core.logs import get_logger
from flops_core.requirements.conda_environment import read_conda_environment
from flops_core.requirements.conda_names import (
    CondaToPypi,
    index_backed_conda_to_pypi,
    translate_conda_name,
)
from flops_core.requirements.pyproject_dependencies import read_pyproject
from flops_core.requirements.requirements_file import (
    DependencyError,
    DependencyFileError,
    read_requirements_file,
)

__all__ = [
    "CONDA_FILE_NAMES",
    "DEPENDENCY_FILE_NAMES",
    "CondaToPypi",
    "DependencyError",
    "DependencyFileError",
    "DependencySpec",
    "MissingDependencyFileError",
    "index_backed_conda_to_pypi",
    "read_dependencies",
    "translate_conda_name",
]

_logger = get_logger("utils.dependencies")

#: Conda environment files, in order of preference.
CONDA_FILE_NAMES: tuple[str, ...] = ("conda.yaml", "conda.yml", "environment.yml")

#: Accepted dependency files at the repo root, in order of preference.
DEPENDENCY_FILE_NAMES: tuple[str, ...] = ("requirements.txt", "pyproject.toml", *CONDA_FILE_NAMES)


class MissingDependencyFileError(DependencyError):
    """Raised when the repo root has no dependency file that declares dependencies."""


@dataclass(frozen=True)
class DependencySpec:
    """The dependencies one repo declares, ready for pip.

    Parameters
    ----------
    source_file : str
        The file they were read from, relative to the repo root.
    requirements : tuple[str, ...]
        PEP 508 requirement strings (`packaging.requirements.Requirement` parses them),
        except URL or path lines whose package cannot be named, which are kept verbatim
        (pip accepts them) and mentioned in `warnings`.
    python_version : str | None
        The requested Python version as a PEP 440 specifier (`==3.11.*` for conda's
        `python=3.11`, `requires-python` as written), or None.
    warnings : tuple[str, ...]
        What was skipped or approximated, one human-readable line each.
    conda_only_packages : tuple[str, ...]
        Conda packages with no PyPI equivalent; not in `requirements`. A repo that lists
        any breaks the ML-repo contract.
    """

    source_file: str
    requirements: tuple[str, ...] = ()
    python_version: str | None = None
    warnings: tuple[str, ...] = ()
    conda_only_packages: tuple[str, ...] = ()


def read_dependencies(
    repo_dir: Path, *, conda_to_pypi: CondaToPypi | None = None
) -> DependencySpec:
    """Read the dependencies declared at the root of the checkout `repo_dir`.

    The first of `DEPENDENCY_FILE_NAMES` that declares dependencies is used; the others
    are ignored, with a warning. A `pyproject.toml` with neither `[project].dependencies`
    nor Poetry dependencies (e.g. one that only configures linters) does not count. The
    formats are parsed by `requirements_file`, `pyproject_dependencies` and
    `conda_environment` (with `conda_spec` and `conda_names`).

    Parameters
    ----------
    repo_dir : Path
        The repo checkout.
    conda_to_pypi : CondaToPypi | None
        Translates conda package names to PyPI names (None: no PyPI equivalent). Defaults
        to `translate_conda_name`, which trusts unknown names; pass
        `index_backed_conda_to_pypi(package_index.exists)` to check them against an index.
        Its errors (e.g. `PackageIndexUnavailableError`) propagate.

    Returns
    -------
    DependencySpec
        The requirements, the Python pin and warnings.

    Raises
    ------
    MissingDependencyFileError
        When no accepted dependency file declares dependencies.
    DependencyFileError
        When the chosen file (or a file it includes) cannot be parsed; names file and line.
    """
    translate = conda_to_pypi or translate_conda_name
    present = [name for name in DEPENDENCY_FILE_NAMES if (repo_dir / name).is_file()]
    for index, name in enumerate(present):
        spec = _read(repo_dir, name, translate)
        if spec is None:
            _logger.debug("%s in %s declares no dependencies", name, repo_dir)
            continue
        ignored = present[index + 1 :]
        if ignored:
            note = f"{name} used; {', '.join(ignored)} ignored"
            spec = replace(spec, warnings=(*spec.warnings, note))
        _logger.debug("read %d requirements from %s", len(spec.requirements), name)
        return spec
    accepted = ", ".join(DEPENDENCY_FILE_NAMES)
    reason = f"no dependency file at the repo root; add one of: {accepted}"
    if "pyproject.toml" in present:
        reason += " (pyproject.toml has neither [project].dependencies nor Poetry dependencies)"
    raise MissingDependencyFileError(reason)


def _read(repo_dir: Path, name: str, conda_to_pypi: CondaToPypi) -> DependencySpec | None:
    path = repo_dir / name
    if name == "requirements.txt":
        lines = read_requirements_file(path, repo_dir=repo_dir)
        return DependencySpec(name, tuple(lines.requirements), None, tuple(lines.warnings))
    if name == "pyproject.toml":
        pyproject = read_pyproject(path, repo_dir=repo_dir)
        if pyproject is None:
            return None
        return DependencySpec(
            name,
            tuple(pyproject.requirements),
            pyproject.python_version,
            tuple(pyproject.warnings),
        )
    conda = read_conda_environment(path, repo_dir=repo_dir, conda_to_pypi=conda_to_pypi)
    return DependencySpec(
        name,
        tuple(conda.requirements),
        conda.python_version,
        tuple(conda.warnings),
        tuple(conda.conda_only),
    )
