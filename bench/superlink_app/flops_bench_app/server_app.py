"""ServerApp: plain FedAvg; times each round as FLOps does and writes the times to a file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import Context
from flwr.common import Parameters, Scalar
from flwr.server import (
    Server,
    ServerApp,
    ServerAppComponents,
    ServerConfig,
    SimpleClientManager,
)
from flwr.server.server import EvaluateResultsAndFailures, FitResultsAndFailures
from flwr.server.strategy import FedAvg


class TimedServer(Server):
    """Record each round from the start of `fit_round` to the end of `evaluate_round`.

    The same definition as FLOps' `ObservedServer`; the benchmark's bare Flower server uses
    this class too. Durations and end times are written to `timings_file` (JSON) after every
    round, so that a run cut short still leaves the rounds it finished.
    """

    def __init__(self, *, timings_file: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.timings_file = timings_file
        self.durations: list[float] = []
        self.ends: list[float] = []
        self._start = 0.0

    def fit_round(
        self, server_round: int, timeout: float | None
    ) -> tuple[Parameters | None, dict[str, Scalar], FitResultsAndFailures] | None:
        self._start = time.perf_counter()
        return super().fit_round(server_round, timeout)

    def evaluate_round(
        self, server_round: int, timeout: float | None
    ) -> tuple[float | None, dict[str, Scalar], EvaluateResultsAndFailures] | None:
        outcome = super().evaluate_round(server_round, timeout)
        end = time.perf_counter()
        self.durations.append(end - self._start)
        self.ends.append(end)
        self.timings_file.write_text(json.dumps({"durations": self.durations, "ends": self.ends}))
        return outcome


def server_fn(context: Context) -> ServerAppComponents:
    """Build FedAvg over `min-clients` SuperNodes and a timed server."""
    clients = int(context.run_config["min-clients"])
    strategy = FedAvg(
        min_fit_clients=clients, min_evaluate_clients=clients, min_available_clients=clients
    )
    server = TimedServer(
        timings_file=Path(str(context.run_config["timings-file"])),
        client_manager=SimpleClientManager(),
        strategy=strategy,
    )
    return ServerAppComponents(
        server=server, config=ServerConfig(num_rounds=int(context.run_config["num-server-rounds"]))
    )


app = ServerApp(server_fn=server_fn)
