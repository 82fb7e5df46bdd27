"""Read a conda environment file and translate its packages into pip requirement strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name

from flops_core.logs import get_logger
from flops_core.requirements.conda_names import CondaToPypi
from flops_core.requirements.conda_spec import CondaSpec, parse_conda_spec
from flops_core.requirements.requirements_file import (
    DependencyFileError,
    display_path,
    parse_requirement_lines,
    read_text_file,
)

__all__ = ["CondaDependencies", "read_conda_environment"]

_logger = get_logger("utils.dependencies")


@dataclass
class CondaDependencies:
    """What a conda environment file asks for, translated for pip."""

    requirements: list[str] = field(default_factory=list)
    python_version: str | None = None
    warnings: list[str] = field(default_factory=list)
    conda_only: list[str] = field(default_factory=list)


def read_conda_environment(
    path: Path, *, repo_dir: Path, conda_to_pypi: CondaToPypi
) -> CondaDependencies:
    """Read `conda.yaml`/`environment.yml`: conda packages, their `pip:` list, the Python pin.

    Parameters
    ----------
    path : Path
        The environment file.
    repo_dir : Path
        The repo root (for file names in messages and `-r` includes in the `pip:` list).
    conda_to_pypi : CondaToPypi
        Translates conda names; packages it maps to None are listed in `conda_only`.

    Returns
    -------
    CondaDependencies
        Conda packages first (as pip requirements), then the `pip:` entries.

    Raises
    ------
    DependencyFileError
        When the file is not YAML of the expected shape, or a package spec is invalid.
    """
    name = display_path(path, repo_dir)
    conda_lines, pip_lines = _entries(read_text_file(path, repo_dir=repo_dir), name)
    result = CondaDependencies()
    with_builds: list[str] = []
    for line, text in conda_lines:
        try:
            spec = parse_conda_spec(text)
        except ValueError as e:
            raise DependencyFileError(name, line, f"invalid conda package {text!r}: {e}") from e
        if spec.untranslatable is not None:
            result.warnings.append(
                f"{name}, line {line}: version {spec.untranslatable!r} of {spec.name} cannot be "
                "expressed for pip; any version allowed"
            )
        if spec.name == "python":
            result.python_version = spec.specifier or None
        elif spec.name != "pip":
            if spec.build is not None:
                with_builds.append(spec.name)
            _add_conda_package(spec, result, conda_to_pypi)
    if with_builds:
        result.warnings.append(f"{name}: conda build strings ignored for {', '.join(with_builds)}")
    pip = parse_requirement_lines(pip_lines, origin=path, repo_dir=repo_dir)
    result.requirements.extend(pip.requirements)
    result.warnings.extend(pip.warnings)
    return result


def _add_conda_package(
    spec: CondaSpec, result: CondaDependencies, conda_to_pypi: CondaToPypi
) -> None:
    pypi_name = conda_to_pypi(spec.name)
    if pypi_name is None:
        result.conda_only.append(spec.name)
        return
    if canonicalize_name(pypi_name) != canonicalize_name(spec.name):
        _logger.debug("conda package %s installs as %s from PyPI", spec.name, pypi_name)
    result.requirements.append(f"{pypi_name}{spec.specifier}")


def _entries(text: str, name: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Return the numbered conda specs and `pip:` lines of an environment file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else None
        raise DependencyFileError(name, line, f"invalid YAML: {e.problem or e}") from e
    except yaml.YAMLError as e:
        raise DependencyFileError(name, None, f"invalid YAML: {e}") from e
    if root is None:
        return [], []
    if not isinstance(root, yaml.MappingNode):
        raise DependencyFileError(name, _line(root), "expected a mapping with 'dependencies:'")
    deps = next((v for k, v in root.value if k.value == "dependencies"), None)
    if deps is None or (isinstance(deps, yaml.ScalarNode) and deps.value in ("", "~", "null")):
        return [], []
    if not isinstance(deps, yaml.SequenceNode):
        raise DependencyFileError(name, _line(deps), "'dependencies:' must be a list")
    conda: list[tuple[int, str]] = []
    pip: list[tuple[int, str]] = []
    for item in deps.value:
        if isinstance(item, yaml.ScalarNode) and str(item.value).strip():
            conda.append((_line(item), str(item.value).strip()))
        elif isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if key.value != "pip" or not isinstance(value, yaml.SequenceNode):
                    raise DependencyFileError(
                        name, _line(key), "only a 'pip:' list may appear among dependencies"
                    )
                pip.extend((_line(v), str(v.value)) for v in value.value)
        else:
            raise DependencyFileError(name, _line(item), "expected a package spec")
    return conda, pip


def _line(node: Any) -> int:
    """Return the 1-based line where a YAML node starts."""
    return int(node.start_mark.line) + 1
