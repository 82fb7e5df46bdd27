"""Flower's round loop, observed: per-round metrics, timing, failures and the best model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.common import Parameters, Scalar
from flwr.server import Server
from flwr.server.server import EvaluateResultsAndFailures, FitResultsAndFailures
from flwr.server.strategy import Strategy

from flops_aggregator.client_manager import FlopsClientManager
from flops_aggregator.errors import RoundFailedError

__all__ = ["BestModel", "ObservedServer", "RoundResult"]


@dataclass
class RoundResult:
    """What one round did; `metrics` is what is logged to MLflow at `step=round`."""

    round: int
    duration_s: float
    wait_s: float
    loss: float | None
    accuracy: float | None
    fit_examples: int
    evaluate_examples: int
    fit_failures: int
    evaluate_failures: int
    learners: int
    extra_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Numeric metrics of the round, without the ones that are unknown."""
        values: dict[str, float | None] = {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "examples": float(self.fit_examples),
            "evaluate_examples": float(self.evaluate_examples),
            "round_duration_s": self.duration_s,
            "learner_wait_s": self.wait_s,
            "fit_failures": float(self.fit_failures),
            "evaluate_failures": float(self.evaluate_failures),
            "learners": float(self.learners),
            **self.extra_metrics,
        }
        return {k: float(v) for k, v in values.items() if v is not None}


@dataclass
class BestModel:
    """Parameters of the best round so far: lowest evaluation loss, ties by accuracy."""

    round: int
    parameters: Parameters
    loss: float | None
    accuracy: float | None

    def beaten_by(self, loss: float | None, accuracy: float | None) -> bool:
        """Whether a round with `loss` and `accuracy` is better than this one."""
        if loss is None:
            return False
        if self.loss is None or loss < self.loss:
            return True
        return loss == self.loss and (accuracy or 0.0) > (self.accuracy or 0.0)


class ObservedServer(Server):
    """A Flower `Server` that times each round, checks it, and reports it.

    A round's duration runs from the start of training to the end of evaluation, less the
    time spent waiting for learners to connect (reported separately as `learner_wait_s`).

    Parameters
    ----------
    client_manager : FlopsClientManager
        The pool of learners; also tells how long a round waited for them.
    strategy : Strategy
        The Flower strategy.
    min_fit_clients : int
        A round whose training results come from fewer learners fails the run.
    on_round : Callable[[RoundResult], None]
        Called after every round's evaluation, on the training thread.
    """

    def __init__(
        self,
        *,
        client_manager: FlopsClientManager,
        strategy: Strategy,
        min_fit_clients: int,
        on_round: Callable[[RoundResult], None],
    ) -> None:
        super().__init__(client_manager=client_manager, strategy=strategy)
        self.clients = client_manager
        self.min_fit_clients = min_fit_clients
        self.on_round = on_round
        self.best: BestModel | None = None
        self.rounds: list[RoundResult] = []
        self._round_start = 0.0
        self._waited_before = 0.0
        self._fit: FitResultsAndFailures = ([], [])

    def fit_round(
        self, server_round: int, timeout: float | None
    ) -> tuple[Parameters | None, dict[str, Scalar], FitResultsAndFailures] | None:
        """Train one round and check that enough learners returned results."""
        self._round_start = time.perf_counter()
        self._waited_before = self.clients.waited_s
        outcome = super().fit_round(server_round, timeout)
        results, failures = outcome[2] if outcome is not None else ([], [])
        if len(results) < self.min_fit_clients:
            raise RoundFailedError(
                f"round {server_round}: {len(results)} learners returned training results, "
                f"{self.min_fit_clients} needed ({len(failures)} failed or timed out)"
            )
        self._fit = (results, failures)
        return outcome

    def evaluate_round(
        self, server_round: int, timeout: float | None
    ) -> tuple[float | None, dict[str, Scalar], EvaluateResultsAndFailures] | None:
        """Evaluate one round, then record and report the round as a whole."""
        outcome = super().evaluate_round(server_round, timeout)
        loss, metrics, (results, failures) = outcome if outcome else (None, {}, ([], []))
        accuracy = metrics.get("accuracy")
        fit_results, fit_failures = self._fit
        waited = self.clients.waited_s - self._waited_before
        result = RoundResult(
            round=server_round,
            duration_s=time.perf_counter() - self._round_start - waited,
            wait_s=waited,
            loss=None if loss is None else float(loss),
            accuracy=None if not isinstance(accuracy, int | float) else float(accuracy),
            fit_examples=sum(res.num_examples for _, res in fit_results),
            evaluate_examples=sum(res.num_examples for _, res in results),
            fit_failures=len(fit_failures),
            evaluate_failures=len(failures),
            learners=self.client_manager().num_available(),
            extra_metrics={
                f"eval_{k}": float(v)
                for k, v in metrics.items()
                if k != "accuracy" and isinstance(v, int | float)
            },
        )
        if self.best is None or self.best.beaten_by(result.loss, result.accuracy):
            self.best = BestModel(server_round, self.parameters, result.loss, result.accuracy)
        self.rounds.append(result)
        self.on_round(result)
        return outcome

    def train(self, parameters: Parameters, rounds: range, timeout: float | None) -> Parameters:
        """Train and evaluate `rounds` (their numbers as given), starting from `parameters`.

        Unlike `fit`, this never asks the strategy or a client for initial parameters, so it
        can be called again with new starting parameters (a cluster aggregator does, once per
        cycle of its root). Returns the parameters after the last round.
        """
        self.parameters = parameters
        for server_round in rounds:
            outcome = self.fit_round(server_round, timeout)
            if outcome is not None and outcome[0] is not None:
                self.parameters = outcome[0]
            self.evaluate_round(server_round, timeout)
        return self.parameters

    def evaluate_parameters(
        self, parameters: Parameters, server_round: int, timeout: float | None
    ) -> tuple[float | None, dict[str, Scalar], EvaluateResultsAndFailures]:
        """Evaluate `parameters` on the learners once, without recording a round."""
        self.parameters = parameters
        outcome = super().evaluate_round(server_round, timeout)
        return outcome if outcome is not None else (None, {}, ([], []))
