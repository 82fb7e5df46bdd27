"""One aggregator run: load the repo's model, serve Flower rounds, track them, keep the best.

Order of work, chosen so that nothing is started that a bad configuration would strand: the
repo's `ModelManager` is imported and the strategy built (both can fail on user input) before
the MLflow run is opened and the gRPC port is bound. From then on every outcome is reported
once, as `succeeded` or `failed`, to the event callback and to MLflow, and the gRPC server is
stopped on every path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

from flops_aggregator.client_manager import FlopsClientManager
from flops_aggregator.config import AggregatorConfig, Hierarchy
from flops_aggregator.errors import RUN_ERRORS, AggregatorError, CancelledError, ConfigurationError
from flops_aggregator.hierarchy import RootRoundConfig
from flops_aggregator.runs import (
    check_repo_requirements,
    report_failure,
    run_params,
    run_tags,
    tracker_of,
)
from flops_aggregator.server import ObservedServer, RoundResult
from flops_aggregator.strategies import StrategyConfigError, build_strategy
from flops_aggregator.tracking import MlflowTracker, RegisteredModel
from flops_core.events import EventReporter, EventType
from flops_core.logs import get_logger
from flops_core.user_code import UserCodeError, call_user_code, load_model_manager

__all__ = ["AggregatorResult", "run_aggregator"]

_log = get_logger("aggregator")


@dataclass
class AggregatorResult:
    """Outcome of a successful run."""

    rounds: list[RoundResult]
    best_round: int
    best_metrics: dict[str, float]
    model: RegisteredModel | None
    run_id: str | None
    learners_dropped: list[str]
    duration_s: float


def run_aggregator(config: AggregatorConfig, *, reporter: EventReporter) -> AggregatorResult:
    """Run federated training as configured; report `started`, rounds, and the outcome.

    Serves classic and root aggregators alike (a root's clients are cluster aggregators, which
    are told the cycle and the root's MLflow run id); cluster aggregators run
    `flops_aggregator.cluster.run_cluster`.

    Raises
    ------
    AggregatorError, ConfigurationError
        Any failure (`RUN_ERRORS`); its message is the reason reported in the `failed` event.
    """
    started = time.perf_counter()
    tracker: MlflowTracker | None = None
    if config.hierarchy is Hierarchy.CLUSTER:
        raise ConfigurationError("a cluster aggregator runs with run_cluster(), not here")
    round_config = RootRoundConfig() if config.hierarchy is Hierarchy.ROOT else None
    try:
        requirements = check_repo_requirements(config.repo_dir)
        model_manager = load_model_manager(config.repo_dir)
        initial = call_user_code(
            "ModelManager.get_model_parameters()", model_manager.get_model_parameters
        )
        strategy = build_strategy(
            config.strategy,
            config.strategy_params,
            initial_parameters=ndarrays_to_parameters(list(initial)),
            min_available_clients=config.min_available_clients,
            min_fit_clients=config.min_fit_clients,
            min_evaluate_clients=config.min_evaluate_clients,
            round_config=round_config,
        )
        tracker = tracker_of(config)
        if tracker is not None:
            run_id = tracker.start(params=run_params(config), tags=run_tags(config))
            if round_config is not None:
                round_config.run_id = run_id
        reporter.report(
            EventType.STARTED,
            rounds=config.rounds,
            strategy=config.strategy,
            address=config.address,
            mlflow_run_id=tracker.run_id if tracker else None,
        )
        result = _train(config, strategy=strategy, reporter=reporter, tracker=tracker)
        model = None
        if tracker is not None:
            call_user_code(
                "ModelManager.set_model_parameters()",
                model_manager.set_model_parameters,
                parameters_to_ndarrays(result.best_parameters),
            )
            model = tracker.log_model(
                model=call_user_code("ModelManager.get_model()", model_manager.get_model),
                flavor=config.flavor,
                registered_name=config.model_name,
                code_paths=_code_paths(config.repo_dir),
                pip_requirements=requirements,
            )
            tracker.finish(succeeded=True)
    except (StrategyConfigError, UserCodeError) as e:
        report_failure(reporter, tracker, str(e))
        raise ConfigurationError(str(e)) from e
    except RUN_ERRORS as e:
        report_failure(reporter, tracker, str(e), killed=isinstance(e, CancelledError))
        raise
    except Exception as e:
        _log.exception("project=%s unexpected failure", config.project_id)
        report_failure(reporter, tracker, f"unexpected {type(e).__name__}: {e}")
        raise AggregatorError(f"unexpected {type(e).__name__}: {e}") from e

    outcome = AggregatorResult(
        rounds=result.server.rounds,
        best_round=result.best_round,
        best_metrics=result.best_metrics,
        model=model,
        run_id=tracker.run_id if tracker else None,
        learners_dropped=list(result.dropped),
        duration_s=time.perf_counter() - started,
    )
    reporter.report(
        EventType.SUCCEEDED,
        best_round=outcome.best_round,
        metrics=outcome.best_metrics,
        model=model.as_dict() if model else None,
        mlflow_run_id=outcome.run_id,
        learners_dropped=outcome.learners_dropped,
        duration_s=round(outcome.duration_s, 3),
    )
    return outcome


@dataclass
class _Training:
    server: ObservedServer
    dropped: list[str]

    @property
    def best_parameters(self) -> Any:
        assert self.server.best is not None
        return self.server.best.parameters

    @property
    def best_round(self) -> int:
        return self.server.best.round if self.server.best else 0

    @property
    def best_metrics(self) -> dict[str, float]:
        best = self.server.best
        if best is None:
            return {}
        return {
            k: v for k, v in (("loss", best.loss), ("accuracy", best.accuracy)) if v is not None
        }


def _train(
    config: AggregatorConfig,
    *,
    strategy: Any,
    reporter: EventReporter,
    tracker: MlflowTracker | None,
) -> _Training:
    def on_drop(learner: str, remaining: int) -> None:
        reporter.report(EventType.LEARNER_DROPPED, learner=learner, remaining=remaining)
        if tracker is not None:
            tracker.set_tags({"flops.learners_dropped": str(len(clients.dropped))})

    def on_connect(learner: str, connected: int) -> None:
        reporter.report(EventType.LEARNER_CONNECTED, learner=learner, connected=connected)

    def on_round(result: RoundResult) -> None:
        _log.info(
            "project=%s round %s/%s done in %.2fs loss=%s accuracy=%s",
            config.project_id,
            result.round,
            config.rounds,
            result.duration_s,
            result.loss,
            result.accuracy,
        )
        if tracker is not None:
            tracker.log_metrics(result.round, result.metrics)
        reporter.report(
            EventType.ROUND_COMPLETED,
            round=result.round,
            rounds=config.rounds,
            metrics=result.metrics,
            duration_s=round(result.duration_s, 4),
        )

    clients = FlopsClientManager(
        connect_timeout=config.connect_timeout, on_connect=on_connect, on_drop=on_drop
    )
    server = ObservedServer(
        client_manager=clients,
        strategy=strategy,
        min_fit_clients=config.min_fit_clients,
        on_round=on_round,
    )
    try:
        grpc_server = start_grpc_server(client_manager=clients, server_address=config.address)
    except RuntimeError as e:
        raise ConfigurationError(f"cannot listen on {config.address}: {e}") from e
    _log.info("project=%s aggregator listening on %s", config.project_id, config.address)
    try:
        server.fit(num_rounds=config.rounds, timeout=config.round_timeout)
        clients.training_finished = True
        server.disconnect_all_clients(timeout=config.round_timeout)
    finally:
        clients.training_finished = True
        grpc_server.stop(grace=1)
    if tracker is not None and clients.dropped:
        tracker.set_tags({"flops.learners_dropped": str(len(clients.dropped))})
    return _Training(server, clients.dropped)


def _code_paths(repo_dir: Path) -> list[str]:
    """The repo's top-level modules and packages, which the pickled model may refer to."""
    paths = [p for p in sorted(repo_dir.glob("*.py"))]
    paths += [p for p in sorted(repo_dir.iterdir()) if (p / "__init__.py").is_file()]
    return [str(p) for p in paths]
