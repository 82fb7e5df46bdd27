"""One cluster aggregator run in hierarchical FL, from start to `succeeded` or `failed`.

The order of work is the classic aggregator's (`flops_aggregator.app`): the repo's model is
loaded and the strategy built before the MLflow run is opened and the learners' port bound.
Every outcome is then reported once, as `succeeded` or `failed`, to the event callback (source
`cluster:<name>`) and to MLflow, with the cluster's name at the start of every reason. A
cluster aggregator never registers a model: the root does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flwr.common import Parameters, ndarrays_to_parameters
from flwr.server.strategy import Strategy

from flops_aggregator.cluster_aggregator import ClusterAggregator, quality
from flops_aggregator.config import AggregatorConfig, Hierarchy
from flops_aggregator.errors import RUN_ERRORS, AggregatorError, CancelledError, ConfigurationError
from flops_aggregator.runs import (
    check_repo_requirements,
    report_failure,
    run_params,
    run_tags,
    tracker_of,
)
from flops_aggregator.server import RoundResult
from flops_aggregator.strategies import StrategyConfigError, build_strategy
from flops_aggregator.tracking import MlflowTracker
from flops_core.events import EventReporter, EventType
from flops_core.logs import get_logger
from flops_core.user_code import UserCodeError, call_user_code, load_model_manager

__all__ = ["ClusterResult", "run_cluster"]

_log = get_logger("aggregator.cluster")


@dataclass
class ClusterResult:
    """Outcome of a cluster aggregator whose root ended training normally."""

    cycles: int
    rounds: list[RoundResult]
    metrics: dict[str, float]
    run_id: str | None
    learners_dropped: list[str]
    duration_s: float


def run_cluster(config: AggregatorConfig, *, reporter: EventReporter) -> ClusterResult:
    """Serve one cluster's learners for the root aggregator; report `started` to `failed`.

    Raises
    ------
    AggregatorError, ConfigurationError
        Any failure (`RUN_ERRORS`); its message, which names the cluster, is the reason reported.
    """
    if config.hierarchy is not Hierarchy.CLUSTER or config.cluster is None:
        raise ConfigurationError("run_cluster() needs a cluster configuration")
    name = config.cluster
    started = time.perf_counter()
    tracker: MlflowTracker | None = None
    try:
        check_repo_requirements(config.repo_dir)
        model_manager = load_model_manager(config.repo_dir)
        initial = call_user_code(
            "ModelManager.get_model_parameters()", model_manager.get_model_parameters
        )

        def make_strategy(parameters: Parameters) -> Strategy:
            return build_strategy(
                config.strategy,
                config.strategy_params,
                initial_parameters=parameters,
                min_available_clients=config.min_available_clients,
                min_fit_clients=config.min_fit_clients,
                min_evaluate_clients=config.min_evaluate_clients,
            )

        cluster = ClusterAggregator(  # builds a first strategy: bad settings fail here
            config,
            make_strategy=make_strategy,
            initial_parameters=ndarrays_to_parameters(list(initial)),
            reporter=reporter,
        )
        tracker = tracker_of(config)
        if tracker is not None:
            tracker.start(
                params=run_params(config),
                tags=run_tags(config),
                run_name=f"{config.project_id}-cluster-{name}",
            )
            cluster.tracker = tracker
        reporter.report(
            EventType.STARTED,
            cluster=name,
            rounds=config.rounds,
            strategy=config.strategy,
            address=config.address,
            root_address=config.root_address,
            mlflow_run_id=tracker.run_id if tracker else None,
        )
        cluster.serve()
        if tracker is not None:
            tracker.finish(succeeded=True)
    except (StrategyConfigError, UserCodeError) as e:
        report_failure(reporter, tracker, _named(name, str(e)))
        raise ConfigurationError(_named(name, str(e))) from e
    except RUN_ERRORS as e:
        reason = _named(name, str(e))
        report_failure(reporter, tracker, reason, killed=isinstance(e, CancelledError))
        raise type(e)(reason) from e
    except Exception as e:
        _log.exception("project=%s cluster %s: unexpected failure", config.project_id, name)
        reason = _named(name, f"unexpected {type(e).__name__}: {e}")
        report_failure(reporter, tracker, reason)
        raise AggregatorError(reason) from e

    outcome = ClusterResult(
        cycles=cluster.cycles_done,
        rounds=cluster.server.rounds,
        metrics=quality(cluster.server.rounds[-1]) if cluster.server.rounds else {},
        run_id=tracker.run_id if tracker else None,
        learners_dropped=list(cluster.clients.dropped),
        duration_s=time.perf_counter() - started,
    )
    reporter.report(
        EventType.SUCCEEDED,
        cluster=name,
        cycles=outcome.cycles,
        rounds=config.rounds,
        metrics=outcome.metrics,
        mlflow_run_id=outcome.run_id,
        learners_dropped=outcome.learners_dropped,
        duration_s=round(outcome.duration_s, 3),
    )
    return outcome


def _named(cluster: str, reason: str) -> str:
    prefix = f"cluster {cluster}: "
    return reason if reason.startswith(prefix) else prefix + reason
