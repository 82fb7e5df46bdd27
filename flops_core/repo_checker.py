"""Check an ML repo checkout against the ML-repo contract, without importing or running it."""

from __future__ import annotations

import ast
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from flops_core.errors import PermanentError
from flops_core.logs import get_logger
from flops_core.model_manager_inspection import inspect_model_manager
from flops_core.requirements.dependencies import (
    DependencyFileError,
    DependencySpec,
    MissingDependencyFileError,
    index_backed_conda_to_pypi,
    read_dependencies,
)
from flops_core.requirements.package_index import PackageIndex, PackageIndexError
from flops_utils.ml_repo_templates import REQUIRED_MODEL_MANAGER_METHODS

__all__ = ["ProblemCode", "RepoContractError", "RepoProblem", "RepoReport", "check_repo"]

_logger = get_logger("utils.repo_checker")

_MODEL_MANAGER = "model_manager.py"
_DATA_MANAGER = "data_manager.py"
_CONTRACT = "the ML-repo contract requires one there that defines class ModelManager"
_TEMPLATE = "flops_utils.ml_repo_templates.ModelManagerTemplate"
_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "env"})
_MAX_FOUND = 5


class ProblemCode(StrEnum):
    """Why a checkout breaks the ML-repo contract: the `code` of a `RepoProblem`."""

    MISSING_MODEL_MANAGER_FILE = "missing_model_manager_file"
    SYNTAX_ERROR = "syntax_error"
    MISSING_MODEL_MANAGER_CLASS = "missing_model_manager_class"
    MODEL_MANAGER_CONSTRUCTOR_ARGS = "model_manager_constructor_args"
    MISSING_METHODS = "missing_methods"
    MISSING_DEPENDENCY_FILE = "missing_dependency_file"
    INVALID_DEPENDENCY_FILE = "invalid_dependency_file"
    CONDA_ONLY_PACKAGE = "conda_only_package"
    DATA_MANAGER_SYNTAX_ERROR = "data_manager_syntax_error"


@dataclass(frozen=True)
class RepoProblem:
    """One way a checkout breaks the ML-repo contract.

    Parameters
    ----------
    code : str
        A `ProblemCode` value, stable for programs.
    file : str | None
        The file concerned, relative to the repo root, if any.
    message : str
        One line for humans: what is wrong, where, and how to fix it.
    """

    code: str
    file: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class RepoContractError(PermanentError):
    """Raised by `RepoReport.raise_for_problems` when a checkout breaks the contract; permanent.

    Parameters
    ----------
    problems : Sequence[RepoProblem]
        Every problem found; the message lists them one per line.
    """

    def __init__(self, problems: Sequence[RepoProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"- {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"the repo breaks the ML-repo contract ({count} problem(s)):\n{lines}")


@dataclass(frozen=True)
class RepoReport:
    """The outcome of `check_repo`: every problem found, and the dependencies when readable.

    Parameters
    ----------
    repo_dir : Path
        The checkout that was checked.
    problems : tuple[RepoProblem, ...]
        Every contract violation found, in a stable order.
    dependencies : DependencySpec | None
        The repo's dependencies, or None when they could not be read.
    warnings : tuple[str, ...]
        What the checker could not verify (e.g. methods that may come from another module).
    """

    repo_dir: Path
    problems: tuple[RepoProblem, ...] = ()
    dependencies: DependencySpec | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the checkout follows the ML-repo contract."""
        return not self.problems

    def format_problems(self) -> str:
        """Return the problems (then the warnings) as indented lines for humans."""
        if self.ok:
            lines = [f"{self.repo_dir}: follows the ML-repo contract"]
        else:
            lines = [f"{self.repo_dir}: {len(self.problems)} problem(s) with the ML-repo contract"]
        lines += [f"  - {problem}" for problem in self.problems]
        notes = (*self.warnings, *(self.dependencies.warnings if self.dependencies else ()))
        lines += [f"  warning: {note}" for note in notes]
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Raise `RepoContractError` listing every problem, if there is any."""
        if self.problems:
            raise RepoContractError(self.problems)


def check_repo(repo_dir: Path, *, package_index: PackageIndex | None = None) -> RepoReport:
    """Check the checkout `repo_dir` against the ML-repo contract; report every problem.

    The repo's code is parsed with `ast`, never imported or run.

    Parameters
    ----------
    repo_dir : Path
        The repo checkout.
    package_index : PackageIndex | None
        Asked whether conda packages outside the built-in name tables exist on PyPI; when
        None or unreachable, such packages are assumed to exist (with a warning if
        unreachable).

    Returns
    -------
    RepoReport
        All problems found, the dependencies when readable, and warnings.

    Raises
    ------
    NotADirectoryError
        When `repo_dir` is not a directory.
    """
    if not repo_dir.is_dir():
        raise NotADirectoryError(f"not a directory: {repo_dir}")
    problems: list[RepoProblem] = []
    notes: list[str] = []
    _check_model_manager(repo_dir, problems, notes)
    data_manager = repo_dir / _DATA_MANAGER
    if data_manager.is_file():
        _parse(data_manager, _DATA_MANAGER, ProblemCode.DATA_MANAGER_SYNTAX_ERROR, problems)
    spec = _check_dependencies(repo_dir, package_index, problems, notes)
    _logger.info("checked %s: %d problem(s)", repo_dir, len(problems))
    return RepoReport(repo_dir, tuple(problems), spec, tuple(notes))


def _check_model_manager(repo_dir: Path, problems: list[RepoProblem], notes: list[str]) -> None:
    path = repo_dir / _MODEL_MANAGER
    if not path.is_file():
        message = f"{_MODEL_MANAGER} not found at the repo root; {_CONTRACT}"
        found = _find_model_managers(repo_dir)
        if found:
            message += f"; found {', '.join(found)}: move it to the repo root as {_MODEL_MANAGER}"
        problems.append(
            RepoProblem(ProblemCode.MISSING_MODEL_MANAGER_FILE, _MODEL_MANAGER, message)
        )
        return
    tree = _parse(path, _MODEL_MANAGER, ProblemCode.SYNTAX_ERROR, problems)
    if tree is None:
        return
    found_class = inspect_model_manager(tree, REQUIRED_MODEL_MANAGER_METHODS)
    where = f"{_MODEL_MANAGER}, line {found_class.line}"
    if found_class.binding == "missing":
        message = (
            f"{_MODEL_MANAGER} does not define ModelManager: add a top-level "
            f"`class ModelManager` (e.g. subclassing {_TEMPLATE}) or import one under that name"
        )
        problems.append(
            RepoProblem(ProblemCode.MISSING_MODEL_MANAGER_CLASS, _MODEL_MANAGER, message)
        )
    elif found_class.binding == "star_import":
        modules = ", ".join(found_class.star_imports)
        notes.append(f"{_MODEL_MANAGER}: ModelManager may come from `import *` of {modules}")
    elif found_class.class_name is None:
        notes.append(f"{where}: ModelManager is bound by an {found_class.binding}; not checked")
    if found_class.class_name is None:
        return
    name = "ModelManager"
    if found_class.class_name != name:
        name += f" (= {found_class.class_name})"
    if found_class.required_init_args:
        args = ", ".join(repr(arg) for arg in found_class.required_init_args)
        message = (
            f"{_MODEL_MANAGER}, line {found_class.init_line}: constructing {name} requires "
            f"{args} (no default value); FLOps calls ModelManager() with no arguments, so give "
            "each a default value"
        )
        problems.append(
            RepoProblem(ProblemCode.MODEL_MANAGER_CONSTRUCTOR_ARGS, _MODEL_MANAGER, message)
        )
    if found_class.missing_methods:
        missing = ", ".join(f"{method}()" for method in found_class.missing_methods)
        message = (
            f"{where}: class {name} does not define {missing}, which the ML-repo contract "
            f"requires (see {_TEMPLATE})"
        )
        problems.append(RepoProblem(ProblemCode.MISSING_METHODS, _MODEL_MANAGER, message))
    if not found_class.methods_known:
        notes.append(f"{where}: {name} has a base defined elsewhere; inherited methods not checked")


def _parse(
    path: Path, name: str, code: ProblemCode, problems: list[RepoProblem]
) -> ast.Module | None:
    """Parse a Python file; on failure record a problem of `code` and return None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.parse(path.read_bytes(), filename=name)
    except SyntaxError as e:
        message = f"{name}, line {e.lineno}: syntax error: {e.msg}"
    except ValueError as e:
        message = f"{name}: cannot be parsed as Python: {e}"
    problems.append(RepoProblem(code, name, message))
    return None


def _find_model_managers(repo_dir: Path) -> list[str]:
    """Return up to a few files elsewhere in the repo that look like a misplaced model manager."""
    found: list[str] = []
    for folder, dirs, files in os.walk(repo_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for file in sorted(files):
            if file.lower().replace("_", "").replace("-", "") == "modelmanager.py":
                found.append((Path(folder) / file).relative_to(repo_dir).as_posix())
        if len(found) >= _MAX_FOUND:
            break
    return found[:_MAX_FOUND]


def _check_dependencies(
    repo_dir: Path,
    package_index: PackageIndex | None,
    problems: list[RepoProblem],
    notes: list[str],
) -> DependencySpec | None:
    conda_to_pypi = index_backed_conda_to_pypi(package_index.exists) if package_index else None
    try:
        try:
            spec = read_dependencies(repo_dir, conda_to_pypi=conda_to_pypi)
        except PackageIndexError as e:
            notes.append(f"{e}; conda packages were assumed to be on PyPI under the same name")
            spec = read_dependencies(repo_dir)
    except MissingDependencyFileError as e:
        problems.append(RepoProblem(ProblemCode.MISSING_DEPENDENCY_FILE, None, str(e)))
        return None
    except DependencyFileError as e:
        problems.append(RepoProblem(ProblemCode.INVALID_DEPENDENCY_FILE, e.file, str(e)))
        return None
    for package in spec.conda_only_packages:
        message = (
            f"{spec.source_file}: conda package {package!r} has no PyPI equivalent and FLOps "
            "installs with pip; drop it, or list a PyPI package in the file's `pip:` section"
        )
        problems.append(RepoProblem(ProblemCode.CONDA_ONLY_PACKAGE, spec.source_file, message))
    return spec
