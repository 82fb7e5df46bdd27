"""Generic code asks an orchestrator's capabilities, never which backend it is.

Reads every module of the source packages (those `pyproject.toml` installs) with `ast` and
fails, naming file and line, on a comparison (`==`, `!=`, `in`, `not in`, a `case`) against a
backend's name ("local", "docker", "oakestra", "swarm") outside the orchestrators and the
settings, where choosing a backend by its name is their job. The same words elsewhere (e.g.
`--env-manager local` in a command) are not comparisons and pass.
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKEND_NAMES = frozenset({"local", "docker", "oakestra", "swarm"})
ALLOWED = ("flops_manager/orchestrators/", "flops_manager/core/config.py")
"""Where a backend may be named: the backends and their factory, and the settings."""
_COMPARISONS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def source_packages(root: Path) -> list[Path]:
    """The top-level packages `pyproject.toml` installs (`[tool.setuptools.packages.find]`)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(
        path
        for path in root.iterdir()
        if (path / "__init__.py").is_file()
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    )


def _names_in(node: ast.expr) -> Iterator[str]:
    """Backend names written as a string literal, alone or in a tuple, list or set literal."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    for item in items:
        value = item.value if isinstance(item, ast.Constant) else None
        if isinstance(value, str) and value.strip().lower() in BACKEND_NAMES:
            yield value


def backend_name_comparisons(source: str) -> Iterator[tuple[int, str]]:
    """`(line, code)` of each comparison against a backend name in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, _COMPARISONS) for op in node.ops):
            if any(next(_names_in(side), None) for side in (node.left, *node.comparators)):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.match_case):
            patterns = [node.pattern]
            while patterns:
                pattern = patterns.pop()
                if isinstance(pattern, ast.MatchOr):
                    patterns.extend(pattern.patterns)
                elif isinstance(pattern, ast.MatchValue) and any(_names_in(pattern.value)):
                    yield pattern.lineno, f"case {ast.unparse(pattern.value)}"


def test_the_checker_flags_comparisons_and_passes_other_uses() -> None:
    # Prepare: each way of asking which backend it is, and the same words used otherwise
    source = (
        'if kind == "oakestra": pass\n'
        'remote = settings.orchestrator != "local"\n'
        'if kind in ("docker", "swarm"): pass\n'
        'match kind:\n    case "Docker" | "other": pass\n'
        'command = ["mlflow", "--env-manager", "local"]\n'
        'if flag == "auto": pass\n'
        'create_orchestrator("local", state_dir=x)\n'
    )

    # Execute
    found = [line for line, _ in backend_name_comparisons(source)]

    # Assert
    assert found == [1, 2, 3, 5]


def test_no_generic_code_compares_against_a_backend_name() -> None:
    # Prepare
    packages = source_packages(REPO_ROOT)
    assert {"flops_manager", "image_builder"} <= {p.name for p in packages}

    # Execute
    found = []
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith(ALLOWED):
                continue
            for line, code in sorted(backend_name_comparisons(path.read_text())):
                found.append(f"{relative}:{line}: {code}")

    # Assert
    assert not found, (
        "generic code asks which backend it is; ask `orchestrator.capabilities` instead "
        "(flops_manager/orchestrators/orchestrator.py), or add a capability there:\n"
        + "\n".join(found)
    )
