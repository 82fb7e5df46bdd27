"""`ClusterAggregator`: Flower server of a cluster's learners and Flower client of the root.

Design. The cluster aggregator listens for its learners exactly like a classic aggregator (the
learners cannot tell the difference) and connects to the root aggregator as one Flower client,
retrying while the root starts. It then does nothing on its own: the root drives it. Each
root fit instruction is one cycle: the root's parameters become the starting point of a fresh
strategy (Flower strategies hand out their initial parameters once, and some keep server-side
state such as FedAdam's moments, which must start again from each new global model), and
`--rounds` rounds of fit and evaluation run over the learners, numbered on from the previous
cycles so that MLflow steps are `(cycle - 1) * rounds + round`. The last round's parameters
go back to the root with the examples they were trained on. Each root evaluate instruction is
one evaluation of the root's parameters on the learners. The learners stay connected across
cycles; when the root ends the session, they are disconnected and the run succeeds.

Waiting is bounded: learners must connect within `--connect-timeout` of the start (checked
when the root first asks for work, so a cluster without learners fails and the root's round
with it), and the root must be reachable within the same time. The learners' gRPC server
is stopped on every path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import grpc
from flwr.client import Client
from flwr.common import (
    Code,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    Parameters,
    Scalar,
    Status,
)
from flwr.server.strategy import Strategy
from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

from flops_aggregator.client_manager import FlopsClientManager
from flops_aggregator.config import AggregatorConfig
from flops_aggregator.errors import (
    ConfigurationError,
    NotEnoughLearnersError,
    RootUnreachableError,
    RoundFailedError,
)
from flops_aggregator.hierarchy import CYCLE_KEY, PARENT_RUN_TAG, ROOT_RUN_ID_KEY
from flops_aggregator.server import ObservedServer, RoundResult
from flops_aggregator.tracking import MlflowTracker
from flops_core.events import EventReporter, EventType
from flops_core.flower_client import grpc_error_detail, start_client_with_retry
from flops_core.logs import get_logger

__all__ = ["ClusterAggregator", "quality"]

_log = get_logger("aggregator.cluster")


class ClusterAggregator(Client):
    """The root's Flower client that trains and evaluates on this cluster's learners.

    Parameters
    ----------
    config : AggregatorConfig
        A cluster configuration (`hierarchy=cluster`, `cluster`, `root_address`).
    make_strategy : Callable[[Parameters], Strategy]
        A fresh strategy starting from the given parameters; called once per cycle.
    initial_parameters : Parameters
        What `get_parameters` returns before the first cycle (the repo's initial model).
    reporter : EventReporter
        Receives learner and round events (source `cluster:<name>`).
    """

    def __init__(
        self,
        config: AggregatorConfig,
        *,
        make_strategy: Callable[[Parameters], Strategy],
        initial_parameters: Parameters,
        reporter: EventReporter,
    ) -> None:
        assert config.cluster is not None and config.root_address is not None
        self.config = config
        self.name = config.cluster
        self.root_address = config.root_address
        self.reporter = reporter
        self.tracker: MlflowTracker | None = None
        self.cycle = 0
        self.cycles_done = 0
        self.instructions = 0
        self.clients = FlopsClientManager(
            connect_timeout=config.connect_timeout,
            on_connect=self._on_connect,
            on_drop=self._on_drop,
        )
        self.server = ObservedServer(
            client_manager=self.clients,
            strategy=make_strategy(initial_parameters),
            min_fit_clients=config.min_fit_clients,
            on_round=self._on_round,
        )
        self._make_strategy = make_strategy
        self._parameters = initial_parameters
        self._learners_deadline = math.inf
        self._parent_linked = False

    def serve(self) -> None:
        """Listen for learners, follow the root until it ends training, then let them go."""
        try:
            grpc_server = start_grpc_server(
                client_manager=self.clients, server_address=self.config.address
            )
        except RuntimeError as e:
            raise ConfigurationError(f"cannot listen on {self.config.address}: {e}") from e
        self._learners_deadline = time.monotonic() + self.config.connect_timeout
        _log.info(
            "project=%s cluster %s listening on %s, root aggregator %s",
            self.config.project_id,
            self.name,
            self.config.address,
            self.root_address,
        )
        try:
            self._follow_root()
            self.clients.training_finished = True
            self.server.disconnect_all_clients(timeout=self.config.round_timeout)
        finally:
            self.clients.training_finished = True
            grpc_server.stop(grace=1)
        if self.tracker is not None and self.clients.dropped:
            self.tracker.set_tags({"flops.learners_dropped": str(len(self.clients.dropped))})

    def get_parameters(self, ins: GetParametersIns) -> GetParametersRes:
        """The parameters of the last cycle (the repo's initial model before the first)."""
        return GetParametersRes(status=Status(Code.OK, "ok"), parameters=self._parameters)

    def fit(self, ins: FitIns) -> FitRes:
        """One cycle: `rounds` rounds over the learners, from the root's parameters."""
        cycle = self._begin(ins.config)
        rounds = self.config.rounds
        first = (cycle - 1) * rounds + 1
        self.server.set_strategy(self._make_strategy(ins.parameters))
        self._parameters = self.server.train(
            ins.parameters, range(first, first + rounds), self.config.round_timeout
        )
        self.cycles_done += 1
        cycle_rounds = [r for r in self.server.rounds if r.round >= first]
        last = cycle_rounds[-1]
        metrics: dict[str, Scalar] = {
            "cluster_rounds": len(cycle_rounds),
            "examples_total": sum(r.fit_examples for r in cycle_rounds),
        }
        metrics.update(quality(last))
        return FitRes(
            status=Status(Code.OK, f"cluster {self.name} trained cycle {cycle}"),
            parameters=self._parameters,
            num_examples=last.fit_examples,
            metrics=metrics,
        )

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        """Evaluate the root's parameters once on the learners."""
        cycle = self._begin(ins.config)
        loss, metrics, (results, failures) = self.server.evaluate_parameters(
            ins.parameters, cycle * self.config.rounds, self.config.round_timeout
        )
        if loss is None or not results:
            raise RoundFailedError(
                f"cycle {cycle}: no learner returned evaluation results "
                f"({len(failures)} failed or timed out)"
            )
        accuracy = metrics.get("accuracy")
        values: dict[str, Scalar] = (
            {"accuracy": float(accuracy)} if isinstance(accuracy, int | float) else {}
        )
        if self.tracker is not None:
            logged = {
                "root_model_loss": float(loss),
                **{f"root_model_{k}": v for k, v in values.items()},
            }
            self.tracker.log_metrics(
                cycle * self.config.rounds, {k: float(v) for k, v in logged.items()}
            )
        return EvaluateRes(
            status=Status(Code.OK, f"cluster {self.name} evaluated cycle {cycle}"),
            loss=float(loss),
            num_examples=sum(res.num_examples for _, res in results),
            metrics=values,
        )

    def _follow_root(self) -> None:
        def retrying(delay: float) -> None:
            _log.info(
                "project=%s cluster %s: root aggregator %s not reachable yet, retrying in %.1f s",
                self.config.project_id,
                self.name,
                self.root_address,
                delay,
            )

        try:
            start_client_with_retry(
                server_address=self.root_address,
                client=self,
                connect_timeout=self.config.connect_timeout,
                may_retry=lambda: self.instructions == 0,
                on_retry=retrying,
            )
        except grpc.RpcError as e:
            detail = grpc_error_detail(e)
            if self.instructions == 0:
                raise RootUnreachableError(
                    f"could not reach the root aggregator at {self.root_address} within "
                    f"{self.config.connect_timeout:g} s ({detail})"
                ) from e
            raise RootUnreachableError(
                f"lost the root aggregator at {self.root_address} after "
                f"{self.cycles_done} cycles ({detail})"
            ) from e

    def _begin(self, config: dict[str, Scalar]) -> int:
        """Take in one instruction of the root: its cycle, its run, and our learners."""
        self.instructions += 1
        cycle = config.get(CYCLE_KEY)
        self.cycle = cycle if isinstance(cycle, int) and cycle >= 1 else self.cycles_done + 1
        root_run_id = config.get(ROOT_RUN_ID_KEY)
        if self.tracker is not None and not self._parent_linked and root_run_id:
            self.tracker.set_tags({PARENT_RUN_TAG: str(root_run_id)})
            self._parent_linked = True
        self._await_learners()
        return self.cycle

    def _await_learners(self) -> None:
        """Before the first round: wait for the learners until `connect_timeout` from start."""
        if self.clients.training_started:
            return
        needed = self.config.min_available_clients
        remaining = max(0.0, self._learners_deadline - time.monotonic())
        if self.clients.wait_for(needed, timeout=math.ceil(remaining)):
            return
        connected = len(self.clients)
        timeout = f"{self.config.connect_timeout:g} s"
        hint = f"(its learners connect to {self.config.address}; check their logs)"
        if connected == 0:
            raise NotEnoughLearnersError(f"no learner connected within {timeout} {hint}")
        raise NotEnoughLearnersError(
            f"only {connected} of the {needed} learners needed connected within {timeout} {hint}"
        )

    def _on_connect(self, learner: str, connected: int) -> None:
        self.reporter.report(
            EventType.LEARNER_CONNECTED, cluster=self.name, learner=learner, connected=connected
        )

    def _on_drop(self, learner: str, remaining: int) -> None:
        self.reporter.report(
            EventType.LEARNER_DROPPED, cluster=self.name, learner=learner, remaining=remaining
        )
        if self.tracker is not None:
            self.tracker.set_tags({"flops.learners_dropped": str(len(self.clients.dropped))})

    def _on_round(self, result: RoundResult) -> None:
        rounds = self.config.rounds
        in_cycle = result.round - (self.cycle - 1) * rounds
        _log.info(
            "project=%s cluster %s cycle %s round %s/%s done in %.2fs loss=%s accuracy=%s",
            self.config.project_id,
            self.name,
            self.cycle,
            in_cycle,
            rounds,
            result.duration_s,
            result.loss,
            result.accuracy,
        )
        if self.tracker is not None:
            self.tracker.log_metrics(result.round, result.metrics)
        self.reporter.report(
            EventType.ROUND_COMPLETED,
            cluster=self.name,
            cycle=self.cycle,
            round=in_cycle,
            rounds=rounds,
            step=result.round,
            metrics=result.metrics,
            duration_s=round(result.duration_s, 4),
        )


def quality(result: RoundResult) -> dict[str, float]:
    """Loss and accuracy of a round, where known."""
    return {k: v for k, v in result.metrics.items() if k in ("loss", "accuracy")}
