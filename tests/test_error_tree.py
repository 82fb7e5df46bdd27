"""One error tree: every FLOps exception derives from `flops_core.errors.FlopsError`.

Read from the source (ast), like `tests/test_layers.py`: every exception class of `flops_core`
and the services reaches `FlopsError` through its bases, has a docstring, and does not
declare `retryable` itself (only `flops_core/errors.py` does, and the SDK's standalone tree);
there is one `ConfigurationError`.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SDK = "flops_utils"
PACKAGES = (
    SDK,
    "flops_core",
    "flops_manager",
    "image_builder",
    "flops_aggregator",
    "flops_learner",
    "flops_data_server",
    "flops_cli",
)
BASE = "FlopsError"
#: Where `retryable` may be set in a class body: the base, and the SDK, which imports no FLOps.
DECLARES_RETRYABLE = frozenset({"flops_core/errors.py", "flops_utils/ml_data_client.py"})
#: Exceptions that stay outside the tree, and why.
OUTSIDE = {
    "BodyTooLargeError": "an HTTPException that FastAPI answers itself with 413",
}
_BUILTIN_ERRORS = frozenset(
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type)
    and issubclass(getattr(builtins, name), BaseException)
)
_THIRD_PARTY_ERRORS = frozenset({"HTTPException"})


@dataclass(frozen=True)
class ErrorClass:
    """One class statement that defines an exception."""

    name: str
    where: str
    bases: tuple[str, ...]
    docstring: str | None
    sets_retryable: bool


def _sets_retryable(node: ast.ClassDef) -> bool:
    for statement in node.body:
        targets: list[ast.expr] = []
        if isinstance(statement, ast.Assign):
            targets = list(statement.targets)
        elif isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        if any(isinstance(t, ast.Name) and t.id == "retryable" for t in targets):
            return True
    return False


def error_classes(root: Path) -> list[ErrorClass]:
    """Every exception class in the source packages, found by following base names."""
    classes: list[ErrorClass] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = tuple(ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases)
                    classes.append(
                        ErrorClass(
                            name=node.name,
                            where=f"{path.relative_to(root)}:{node.lineno}",
                            bases=bases,
                            docstring=ast.get_docstring(node),
                            sets_retryable=_sets_retryable(node),
                        )
                    )
    by_name: dict[str, list[ErrorClass]] = {}
    for cls in classes:
        by_name.setdefault(cls.name, []).append(cls)

    def reaches(name: str, targets: frozenset[str], seen: frozenset[str]) -> bool:
        if name in targets:
            return True
        if name in seen:
            return False
        return any(
            reaches(base, targets, seen | {name})
            for cls in by_name.get(name, [])
            for base in cls.bases
        )

    exceptions = _BUILTIN_ERRORS | _THIRD_PARTY_ERRORS
    return [
        cls
        for cls in classes
        if any(reaches(base, exceptions, frozenset({cls.name})) for base in cls.bases)
    ]


def tree_problems(root: Path) -> list[str]:
    """`file:line: problem` for each exception class that breaks the one-tree rules."""
    found = error_classes(root)
    by_name: dict[str, list[ErrorClass]] = {}
    for cls in found:
        by_name.setdefault(cls.name, []).append(cls)

    def derives_from_base(cls: ErrorClass, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            base == BASE
            or (
                base not in seen
                and any(derives_from_base(c, seen | {cls.name}) for c in by_name.get(base, []))
            )
            for base in cls.bases
        )

    problems: list[str] = []
    for cls in found:
        path = cls.where.rsplit(":", 1)[0]
        in_sdk = path.startswith(f"{SDK}/")
        if not cls.docstring:
            problems.append(f"{cls.where}: {cls.name} has no docstring saying when it is raised")
        if cls.sets_retryable and path not in DECLARES_RETRYABLE:
            problems.append(
                f"{cls.where}: {cls.name} sets `retryable`; derive from TemporaryError instead"
            )
        exempt = in_sdk or cls.name == BASE or cls.name.startswith("_") or cls.name in OUTSIDE
        if in_sdk and derives_from_base(cls):
            problems.append(f"{cls.where}: {cls.name} is in the SDK, which imports no FLOps")
        if not exempt and not derives_from_base(cls):
            problems.append(f"{cls.where}: {cls.name} does not derive from {BASE}")
    configuration = [cls.where for cls in found if cls.name == "ConfigurationError"]
    if len(configuration) != 1:
        problems.append(f"one ConfigurationError expected, found: {', '.join(configuration)}")
    return problems


def test_every_flops_exception_is_in_the_one_tree() -> None:
    # Execute
    problems = tree_problems(ROOT)
    # Assert
    assert problems == [], "exceptions outside the one error tree:\n" + "\n".join(problems)


def test_the_check_finds_a_stray_exception_family(tmp_path: Path) -> None:
    # Prepare: a copy of the base and a service with its own `retryable` and no FlopsError
    core = tmp_path / "flops_core"
    core.mkdir()
    (core / "errors.py").write_text((ROOT / "flops_core" / "errors.py").read_text())
    service = tmp_path / "flops_learner"
    service.mkdir()
    (service / "errors.py").write_text(
        "class FetchError(RuntimeError):\n"
        "    retryable = True\n"
        "\n"
        "class ConfigurationError(ValueError):\n"
        '    """Raised when the configuration is invalid."""\n'
    )
    # Execute
    problems = tree_problems(tmp_path)
    # Assert
    text = "\n".join(problems)
    assert "flops_learner/errors.py:1: FetchError has no docstring" in text
    assert "flops_learner/errors.py:1: FetchError sets `retryable`" in text
    assert "flops_learner/errors.py:1: FetchError does not derive from FlopsError" in text
    assert "flops_learner/errors.py:4: ConfigurationError does not derive" in text
    assert "one ConfigurationError expected, found: flops_core/errors.py" in text
