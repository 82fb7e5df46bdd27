"""`python -m flops_learner`: run one learner (Flower client side) from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from flops_core.cli_options import CallbackTokenOption, CallbackUrlOption, LogLevelOption, cli_app
from flops_core.events import EventReporter
from flops_core.logs import configure_logging
from flops_learner.app import LearnerError, run_learner
from flops_learner.config import LearnerConfig

__all__ = ["app"]

app = cli_app("Run a FLOps learner (Flower client side).")


@app.command()
def main(
    project_id: Annotated[str, typer.Option(help="Project id.")],
    repo_dir: Annotated[Path, typer.Option(help="Checkout of the ML repo.")],
    aggregator: Annotated[str, typer.Option(help="Aggregator address, host:port.")],
    data_tags: Annotated[
        str, typer.Option(help="Comma-separated data tags.", envvar="FLOPS_DATA_TAGS")
    ],
    data_server: Annotated[
        str, typer.Option(help="ML data server address.")
    ] = "grpc://127.0.0.1:11027",
    name: Annotated[str, typer.Option(help="Name of this learner in events.")] = "learner",
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to retry while the aggregator is not up.")
    ] = 300.0,
    callback_url: CallbackUrlOption = None,
    callback_token: CallbackTokenOption = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Train the repo's model on this node's data under the aggregator's direction."""
    configure_logging(log_level, quiet=("flwr",))
    try:
        config = LearnerConfig(
            project_id=project_id,
            repo_dir=repo_dir,
            aggregator=aggregator,
            data_server=data_server,
            data_tags=[t.strip() for t in data_tags.split(",") if t.strip()],
            name=name,
            connect_timeout=connect_timeout,
            callback_url=callback_url,
        )
    except ValidationError as e:
        fields = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        typer.echo(f"error: invalid configuration: {fields}", err=True)
        raise typer.Exit(2) from e
    reporter = EventReporter(
        project_id=config.project_id,
        source=f"learner:{config.name}",
        callback_url=config.callback_url,
        callback_token=callback_token,
    )
    try:
        run_learner(config, reporter=reporter)
    except LearnerError as e:
        typer.echo(f"error: learner {config.name} failed: {e}", err=True)
        raise typer.Exit(1) from e
    finally:
        reporter.close()
