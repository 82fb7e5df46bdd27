"""The package layers hold: services never import each other, the SDK imports no FLOps code.

Layers, from the bottom: `flops_utils` (the SDK ML repos import; it goes into images) imports
nothing of FLOps; `flops_core` (shared vocabulary and mechanisms) imports only the SDK; each
service imports `flops_core` and the SDK, never another service.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SDK = "flops_utils"
CORE = "flops_core"
SERVICES = (
    "flops_manager",
    "image_builder",
    "flops_aggregator",
    "flops_learner",
    "flops_data_server",
    "flops_cli",
)
PACKAGES = (SDK, CORE, *SERVICES)

#: What each package may import of FLOps besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    SDK: frozenset(),
    CORE: frozenset({SDK}),
    **{service: frozenset({SDK, CORE}) for service in SERVICES},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute module an `import` or `from … import` names, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def layer_violations(root: Path) -> list[str]:
    """`file:line: package imports module` for each import that crosses the layers."""
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, module in imported_modules(tree):
                top = module.split(".")[0]
                if top in PACKAGES and top != package and top not in ALLOWED[package]:
                    where = path.relative_to(root)
                    problems.append(f"{where}:{line}: {package} imports {module}")
    return problems


def test_no_package_imports_across_its_layer() -> None:
    # Execute
    problems = layer_violations(ROOT)
    # Assert
    assert problems == [], "imports that cross the layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("package", "module", "allowed"),
    [
        ("flops_manager", "image_builder.errors", False),
        ("image_builder", "flops_manager.environments", False),
        ("flops_cli", "flops_aggregator.config", False),
        ("flops_core", "flops_manager.lifecycle", False),
        ("flops_utils", "flops_core.logs", False),
        ("flops_learner", "flops_core.events", True),
        ("flops_core", "flops_utils.ml_repo_templates", True),
    ],
)
def test_a_cross_import_added_back_is_named_with_its_file_and_line(
    tmp_path: Path, package: str, module: str, allowed: bool
) -> None:
    # Prepare: a copy of the layout with one extra import in a module of `package`.
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text('"""x"""\n')
    (tmp_path / package / "leaky.py").write_text(f'"""x"""\n\nimport json\nimport {module}\n')
    # Execute
    problems = layer_violations(tmp_path)
    # Assert
    expected = [] if allowed else [f"{package}/leaky.py:4: {package} imports {module}"]
    assert problems == expected


def _loaded_after_import(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running `statement`."""
    listing = "print(' '.join({m.split('.')[0] for m in sys.modules}))"
    code = f"import sys; {statement}; {listing}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_managers_request_schemas_load_without_flower() -> None:
    # Execute
    loaded = _loaded_after_import("import flops_manager.schemas")
    # Assert
    assert "flwr" not in loaded
    assert "flops_aggregator" not in loaded


def test_the_cli_loads_without_the_manager_or_flower() -> None:
    # Execute
    loaded = _loaded_after_import("import flops_cli.main")
    # Assert
    assert not loaded & {"flwr", "flops_manager", "flops_aggregator", "image_builder"}
