"""No command-line app of FLOps prints local variables in a traceback (they hold tokens)."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "flops_aggregator", "flops_learner", "flops_data_server", "flops_cli", "image_builder",
    "flops_manager", "flops_utils",
)  # fmt: skip


def _typer_apps() -> dict[str, typer.Typer]:
    """Every `typer.Typer` defined at module level in the FLOps packages, by dotted name."""
    apps: dict[str, typer.Typer] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py" or "typer" not in path.read_text(errors="replace"):
                continue  # importing __main__ would run the app
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = importlib.import_module(name.removesuffix(".__init__"))
            for attribute, value in vars(module).items():
                if isinstance(value, typer.Typer):
                    apps[f"{module.__name__}.{attribute}"] = value
    return apps


def test_every_typer_app_keeps_locals_out_of_tracebacks() -> None:
    apps = _typer_apps()
    assert {"flops_aggregator.cli.app", "flops_learner.cli.app", "flops_cli.main.app",
            "flops_data_server.cli.app", "image_builder.cli.app"} <= set(apps)  # fmt: skip
    showing = [name for name, app in apps.items() if app.pretty_exceptions_show_locals]
    assert showing == []
