"""An aggregator whose MLflow stops answering ends failed, naming MLflow, within its bound."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_core.mlflow_server import MlflowServer, start_mlflow_server
from tests.conftest import EventReceiver, free_port
from tests.e2e.conftest import EXAMPLES, Processes

pytestmark = pytest.mark.e2e

MLFLOW_TIMEOUT_S = 10


@pytest.fixture
def own_mlflow(tmp_path: Path) -> Iterator[MlflowServer]:
    """An MLflow server of this test alone, as it is frozen; running again at the end."""
    server = start_mlflow_server(tmp_path / "mlflow", port=free_port())
    try:
        yield server
    finally:
        os.killpg(server.process.pid, signal.SIGCONT)
        server.stop()


def test_mlflow_frozen_after_the_run_started_fails_the_run_naming_mlflow(
    procs: Processes, data_server: str, own_mlflow: MlflowServer, events: EventReceiver
) -> None:
    # Prepare: the run has started in MLflow, then MLflow stops answering (SIGSTOP)
    port = free_port()
    aggregator = procs.aggregator(
        "mlflow-frozen", EXAMPLES / "sklearn-digits", port, "--rounds", "2",
        "--mlflow-uri", own_mlflow.url, "--mlflow-timeout", str(MLFLOW_TIMEOUT_S),
        "--callback-url", events.url,
    )  # fmt: skip
    events.wait_for("started", timeout=120)
    os.killpg(own_mlflow.process.pid, signal.SIGSTOP)

    # Execute: training itself needs no MLflow; storing the model does
    learner = procs.learner("l0", EXAMPLES / "sklearn-digits", port, data_server, "digits-0")

    # Assert: the run fails saying what did not answer, within its bound (MLflow's own
    # defaults would retry for about 4 minutes, each request waiting up to 120 s)
    assert aggregator.wait(120) == 1
    reason = events.wait_for("failed", timeout=5)["data"]["reason"]
    assert reason == (
        f"MLflow at {own_mlflow.url} did not answer within {MLFLOW_TIMEOUT_S} s while storing "
        "and registering the model"
    )
    assert len(events.of_type("round_completed")) == 2
    assert learner.wait(60) == 0
