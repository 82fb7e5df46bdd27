"""Read the dependencies a `pyproject.toml` declares: PEP 621 `[project]`, else Poetry's."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from flops_core.requirements.requirements_file import (
    DependencyFileError,
    display_path,
    read_requirements_file,
    read_text_file,
)

__all__ = ["PyprojectDependencies", "poetry_specifier", "read_pyproject"]

_POETRY_OPERATOR_SPACE = re.compile(r"([<>=!~^]=?)\s+")


@dataclass
class PyprojectDependencies:
    """What a `pyproject.toml` asks for: requirement strings and `requires-python`."""

    requirements: list[str] = field(default_factory=list)
    python_version: str | None = None
    warnings: list[str] = field(default_factory=list)


def read_pyproject(path: Path, *, repo_dir: Path) -> PyprojectDependencies | None:
    """Read `[project].dependencies` (or `[tool.poetry.dependencies]`) of `path`.

    Parameters
    ----------
    path : Path
        The `pyproject.toml`.
    repo_dir : Path
        The repo root; files named by setuptools' dynamic dependencies must be inside it.

    Returns
    -------
    PyprojectDependencies | None
        None when the file declares no dependencies at all (e.g. it only configures tools),
        so that the caller can look at the next dependency file.

    Raises
    ------
    DependencyFileError
        When the file is not valid TOML or a requirement is invalid.
    """
    name = display_path(path, repo_dir)
    text = read_text_file(path, repo_dir=repo_dir)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        at_line = re.search(r"at line (\d+)", str(e))
        line = int(at_line[1]) if at_line else len(text.splitlines()) or 1  # end of document
        reason = re.sub(r"\s*\(at (line|end of document).*\)$", "", str(e))
        raise DependencyFileError(name, line, f"invalid TOML: {reason}") from e
    project = data.get("project")
    if isinstance(project, dict) and (
        "dependencies" in project or "dependencies" in project.get("dynamic", [])
    ):
        return _project(project, data, path=path, repo_dir=repo_dir, text=text)
    poetry = data.get("tool", {}).get("poetry", {})
    if isinstance(poetry, dict) and isinstance(poetry.get("dependencies"), dict):
        return _poetry(poetry["dependencies"], name=name, text=text)
    return None


def _project(
    project: dict[str, Any], data: dict[str, Any], *, path: Path, repo_dir: Path, text: str
) -> PyprojectDependencies:
    name = display_path(path, repo_dir)
    result = PyprojectDependencies()
    if "requires-python" in project:
        line = _line_of(text, r"^\s*requires-python\s*=")
        result.python_version = _specifier(project["requires-python"], name, line)
    if "dependencies" not in project:
        dynamic = data.get("tool", {}).get("setuptools", {}).get("dynamic", {})
        files = dynamic.get("dependencies", {}).get("file") if isinstance(dynamic, dict) else None
        if not files:
            result.warnings.append(f"{name}: [project].dependencies is dynamic; none were read")
        for file in [files] if isinstance(files, str) else files or []:
            target = (path.parent / str(file)).resolve()
            if not target.is_relative_to(repo_dir.resolve()) or not target.is_file():
                line = _line_of(text, re.escape(str(file)))
                raise DependencyFileError(name, line, f"dependency file {file!r} not in the repo")
            lines = read_requirements_file(target, repo_dir=repo_dir)
            result.requirements.extend(lines.requirements)
            result.warnings.extend(lines.warnings)
        return result
    deps = project["dependencies"]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        line = _line_of(text, r"^\s*dependencies\s*=")
        raise DependencyFileError(name, line, "[project].dependencies must be a list of strings")
    for dep in deps:
        line = _line_of(text, f"[\"']{re.escape(dep)}[\"']")
        result.requirements.append(_requirement(dep, name, line))
    return result


def _poetry(deps: dict[str, Any], *, name: str, text: str) -> PyprojectDependencies:
    result = PyprojectDependencies()
    table = re.search(r"^\[tool\.poetry\.dependencies\]", text, re.MULTILINE)
    start = table.end() if table else 0
    for package, value in deps.items():
        line = _line_of(text, rf"^\s*[\"']?{re.escape(package)}[\"']?\s*=", start)
        try:
            if package.lower() == "python":
                result.python_version = poetry_specifier(str(value)) or None
                continue
            for constraint in value if isinstance(value, list) else [value]:
                requirement = _poetry_requirement(package, constraint, result.warnings, name)
                if requirement is not None:
                    result.requirements.append(_requirement(requirement, name, line))
        except ValueError as e:
            raise DependencyFileError(name, line, f"dependency {package!r}: {e}") from e
    return result


def _poetry_requirement(package: str, value: Any, warnings: list[str], name: str) -> str | None:
    """Return the pip requirement for one Poetry dependency entry, or None to skip it."""
    if isinstance(value, str):
        return f"{package}{poetry_specifier(value)}"
    if not isinstance(value, dict):
        raise ValueError("expected a version string or a table")
    if value.get("optional") or "path" in value:
        kind = "optional (extra-only)" if value.get("optional") else "path"
        warnings.append(f"{name}: {kind} dependency {package!r} skipped")
        return None
    extras = f"[{','.join(value['extras'])}]" if value.get("extras") else ""
    conditions = [str(value["markers"])] if value.get("markers") else []
    if value.get("python"):
        for clause in filter(None, poetry_specifier(str(value["python"])).split(",")):
            operator = clause[: len(clause) - len(clause.lstrip("<>=!~"))]
            conditions.append(f'python_version {operator} "{clause[len(operator) :]}"')
    if len(conditions) > 1:
        conditions = [" and ".join(f"({condition})" for condition in conditions)]
    markers = f" ; {conditions[0]}" if conditions else ""
    if "git" in value:
        url = value["git"] if str(value["git"]).startswith("git+") else f"git+{value['git']}"
        ref = value.get("rev") or value.get("tag") or value.get("branch")
        url += f"@{ref}" if ref else ""
        url += f"#subdirectory={value['subdirectory']}" if value.get("subdirectory") else ""
        return f"{package}{extras} @ {url}{markers}"
    if "url" in value:
        return f"{package}{extras} @ {value['url']}{markers}"
    return f"{package}{extras}{poetry_specifier(str(value.get('version', '*')))}{markers}"


def poetry_specifier(constraint: str) -> str:
    """Translate a Poetry version constraint (`^1.2`, `~1.2.3`, `>=1,<2`, `1.2.*`) for pip.

    Parameters
    ----------
    constraint : str
        The Poetry constraint; `*` or empty means any version.

    Returns
    -------
    str
        A PEP 440 specifier such as `>=1.2,<2`; empty for any version.

    Raises
    ------
    ValueError
        For alternatives (`||`) and constraints that are not valid versions.
    """
    text = _POETRY_OPERATOR_SPACE.sub(r"\1", constraint.strip())
    if text in ("", "*"):
        return ""
    if "|" in text:
        raise ValueError(f"alternatives in {constraint!r} cannot be expressed for pip")
    parts: list[str] = []
    for part in filter(None, re.split(r"[,\s]+", text)):
        if part.startswith("^"):
            parts.append(_bounded(part[1:], caret=True))
        elif part.startswith("~") and not part.startswith("~="):
            parts.append(_bounded(part[1:], caret=False))
        elif part[0] in "<>=!~":
            parts.append(part)
        else:
            parts.append(f"=={part}")
    specifier = ",".join(parts)
    try:
        SpecifierSet(specifier)
    except InvalidSpecifier as e:
        raise ValueError(f"invalid version constraint {constraint!r}") from e
    return specifier


def _bounded(version: str, *, caret: bool) -> str:
    """Expand `^version` (next breaking release) or `~version` (next minor) into a range."""
    release = Version(version).release
    if caret:
        index = next((i for i, n in enumerate(release) if n), len(release) - 1)
    else:
        index = min(1, len(release) - 1)
    upper = (*release[:index], release[index] + 1)
    return f">={version},<{'.'.join(map(str, upper))}"


def _requirement(text: str, name: str, line: int | None) -> str:
    try:
        Requirement(text)
    except InvalidRequirement as e:
        reason = str(e).splitlines()[0]
        raise DependencyFileError(name, line, f"invalid requirement {text!r}: {reason}") from e
    return text


def _specifier(value: object, name: str, line: int | None) -> str:
    try:
        return str(SpecifierSet(str(value)))
    except InvalidSpecifier as e:
        raise DependencyFileError(name, line, f"invalid requires-python {value!r}") from e


def _line_of(text: str, pattern: str, start: int = 0) -> int | None:
    """Return the 1-based line where `pattern` first matches at or after `start`."""
    match = re.compile(pattern, re.MULTILINE).search(text, start)
    return text.count("\n", 0, match.start()) + 1 if match else None
