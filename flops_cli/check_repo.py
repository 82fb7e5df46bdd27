"""`flops-check-repo DIR`: check an ML repo checkout against the FLOps contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flops_core.cli_options import cli_app
from flops_core.repo_checker import check_repo
from flops_core.requirements.package_index import PackageIndex

__all__ = ["app"]

app = cli_app("Check an ML repo against the FLOps contract.")


@app.command()
def main(
    repo_dir: Annotated[Path, typer.Argument(help="Root of the repo checkout.")],
    index_url: Annotated[
        str, typer.Option(help="PEP 503 index asked whether conda packages exist on PyPI.")
    ] = "https://pypi.org/simple",
    offline: Annotated[bool, typer.Option(help="Do not ask a package index.")] = False,
) -> None:
    """Print every problem found; exit 1 if there is any."""
    index = None if offline else PackageIndex(index_url, timeout=10.0)
    try:
        report = check_repo(repo_dir, package_index=index)
    finally:
        if index is not None:
            index.close()
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not report.ok:
        typer.echo(report.format_problems(), err=True)
        raise typer.Exit(1)
    assert report.dependencies is not None
    typer.echo(
        f"{repo_dir}: follows the FLOps ML-repo contract "
        f"({len(report.dependencies.requirements)} requirements from "
        f"{report.dependencies.source_file})"
    )
