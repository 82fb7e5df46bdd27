"""`python -m flops_aggregator`: run one project's Flower aggregator from the command line."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError

from flops_aggregator.app import run_aggregator
from flops_aggregator.cluster import run_cluster
from flops_aggregator.config import AggregatorConfig, Hierarchy, MLFlavor
from flops_aggregator.errors import RUN_ERRORS, CancelledError
from flops_aggregator.tracking import mlflow_http_settings
from flops_core.cli_options import CallbackTokenOption, CallbackUrlOption, LogLevelOption, cli_app
from flops_core.events import EventReporter
from flops_core.logs import configure_logging

__all__ = ["app"]

app = cli_app("Run a FLOps aggregator (Flower server side).")


@app.command()
def main(
    project_id: Annotated[str, typer.Option(help="Project id (letters, digits, - _ .).")],
    repo_dir: Annotated[Path, typer.Option(help="Checkout of the ML repo.")],
    flavor: Annotated[MLFlavor, typer.Option(help="ML flavor of the repo.")] = MLFlavor.SKLEARN,
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 3,
    min_available_clients: Annotated[int, typer.Option(help="Learners before round 1.")] = 1,
    min_fit_clients: Annotated[int, typer.Option(help="Learners training per round.")] = 1,
    min_evaluate_clients: Annotated[int, typer.Option(help="Learners evaluating.")] = 1,
    strategy: Annotated[str, typer.Option(help="Flower strategy, e.g. FedAvg.")] = "FedAvg",
    strategy_params: Annotated[
        str,
        typer.Option(
            help='Strategy parameters as JSON, e.g. {"proximal_mu": 0.1}.',
            envvar="FLOPS_STRATEGY_PARAMS",
        ),
    ] = "{}",
    address: Annotated[str, typer.Option(help="gRPC listen address.")] = "0.0.0.0:8080",
    round_timeout: Annotated[float, typer.Option(help="Seconds one round may take.")] = 300.0,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for enough learners.")
    ] = 300.0,
    mlflow_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    metrics_flush_seconds: Annotated[
        int, typer.Option(help="Send round metrics to MLflow in batches this often (0: each).")
    ] = 2,
    mlflow_timeout: Annotated[
        float, typer.Option(help="Seconds MLflow may take per request and per tracking step.")
    ] = 60.0,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    repo_url: Annotated[
        str | None, typer.Option(help="Repo URL (MLflow tag).", envvar="FLOPS_REPO_URL")
    ] = None,
    commit: Annotated[str | None, typer.Option(help="Repo commit (MLflow tag).")] = None,
    callback_url: CallbackUrlOption = None,
    callback_token: CallbackTokenOption = None,
    log_level: LogLevelOption = "INFO",
    hierarchy: Annotated[
        Hierarchy,
        typer.Option(
            help="classic: one aggregator; root: aggregates cluster aggregators (--rounds is "
            "training_cycles); cluster: serves one cluster's learners for the root (--rounds "
            "is training_rounds per cycle)."
        ),
    ] = Hierarchy.CLASSIC,
    cluster: Annotated[
        str | None, typer.Option(help="Cluster name, letters and digits (hierarchy cluster).")
    ] = None,
    root_address: Annotated[
        str | None, typer.Option(help="Root aggregator address, host:port (hierarchy cluster).")
    ] = None,
) -> None:
    """Serve federated training for one project and register the best model.

    With `--hierarchy cluster` it trains one cluster's learners for a root aggregator instead,
    and registers no model.
    """
    configure_logging(log_level, quiet=("flwr",))
    try:
        config = AggregatorConfig(
            project_id=project_id,
            repo_dir=repo_dir,
            flavor=flavor,
            rounds=rounds,
            min_available_clients=min_available_clients,
            min_fit_clients=min_fit_clients,
            min_evaluate_clients=min_evaluate_clients,
            strategy=strategy,
            strategy_params=_json_object("--strategy-params", strategy_params),
            address=address,
            round_timeout=round_timeout,
            connect_timeout=connect_timeout,
            mlflow_uri=mlflow_uri,
            metrics_flush_seconds=metrics_flush_seconds,
            mlflow_timeout=mlflow_timeout,
            experiment_name=experiment,
            registered_model_name=model_name,
            repo_url=repo_url,
            commit=commit,
            callback_url=callback_url,
            hierarchy=hierarchy,
            cluster=cluster,
            root_address=root_address,
        )
    except (ValidationError, ValueError) as e:
        typer.echo(f"error: invalid configuration: {_first_error(e)}", err=True)
        raise typer.Exit(2) from e
    # MLflow's own defaults retry a request for about 4 minutes; bound every request.
    os.environ.update(mlflow_http_settings(config.mlflow_timeout))
    if config.metrics_flush_seconds > 0:
        # MLflow's async logging merges what was queued within this window into one request.
        os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = str(config.metrics_flush_seconds)
    reporter = EventReporter(
        project_id=config.project_id,
        source=f"cluster:{config.cluster}" if config.cluster else "aggregator",
        callback_url=config.callback_url,
        callback_token=callback_token,
    )
    _stop_on_signals(reporter)
    try:
        summary = _run(config, reporter)
    except RUN_ERRORS as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from e
    finally:
        reporter.close()
    sys.stdout.write(json.dumps(summary) + "\n")


def _run(config: AggregatorConfig, reporter: EventReporter) -> dict[str, object]:
    """Run the aggregator `config` describes; return the summary printed on success."""
    if config.hierarchy is Hierarchy.CLUSTER:
        outcome = run_cluster(config, reporter=reporter)
        return {
            "cluster": config.cluster,
            "cycles": outcome.cycles,
            "metrics": outcome.metrics,
            "learners_dropped": outcome.learners_dropped,
        }
    result = run_aggregator(config, reporter=reporter)
    return {
        "best_round": result.best_round,
        "metrics": result.best_metrics,
        "model": result.model.as_dict() if result.model else None,
        "learners_dropped": result.learners_dropped,
    }


def _stop_on_signals(reporter: EventReporter) -> None:
    """SIGTERM and SIGINT stop training; once the outcome is reported they only hurry the exit.

    During training the handler raises `CancelledError` in the main thread, which runs the
    rounds: the run is closed (KILLED) and reported as failed. After `succeeded` or `failed`
    was reported there is nothing left to cancel (a manager stops the aggregator as soon as it
    has the outcome): the reporter sends the outcome if it is still on its way, drops the
    rest, and the process ends as it would have, without a traceback.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        if reporter.outcome_reported:
            reporter.hurry()
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise CancelledError(f"stopped by {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def _json_object(option: str, text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{option} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object")
    return value


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in error.errors()
        )
    return str(error)
