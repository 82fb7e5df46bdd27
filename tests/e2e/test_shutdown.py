"""An aggregator told to stop after it reported its outcome ends cleanly: exit 0, no traceback."""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import pytest

from flops_core.mlflow_server import MlflowServer
from tests.conftest import EventReceiver, free_port
from tests.e2e.conftest import ENV, EXAMPLES, Processes

pytestmark = pytest.mark.e2e

TOKEN = "flops_Xpcm08-callback-token-of-the-test-0123456789"


def test_sigterm_while_the_outcome_is_delivered_ends_cleanly(
    procs: Processes, data_server: str, mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Prepare: a receiver that, like a manager, stops the aggregator once it has the outcome,
    # and answers only after that, so the signal lands while the aggregator closes its reporter
    monkeypatch.setitem(ENV, "FLOPS_CALLBACK_TOKEN", TOKEN)
    pids: dict[str, int] = {}

    def stop_on_outcome(event: dict[str, Any]) -> None:
        if event["type"] == "succeeded" and event["source"] == "aggregator":
            os.kill(pids["aggregator"], signal.SIGTERM)
            time.sleep(1.0)

    events = EventReceiver(stop_on_outcome)
    port = free_port()
    repo = EXAMPLES / "sklearn-digits"

    # Execute
    try:
        aggregator = procs.aggregator(
            f"p{uuid.uuid4().hex[:10]}", repo, port, "--rounds", "2",
            "--min-available-clients", "3", "--min-fit-clients", "3",
            "--min-evaluate-clients", "3", "--mlflow-uri", mlflow_server.url,
            "--callback-url", events.url, "--connect-timeout", "90",
        )  # fmt: skip
        pids["aggregator"] = aggregator.process.pid
        for i in range(3):
            procs.learner(f"l{i}", repo, port, data_server, f"digits-{i}")
        code = aggregator.wait(240)
    finally:
        events.close()

    # Assert: the outcome arrived, the process ended as a success, and said nothing secret
    output = aggregator.output()
    assert len(events.of_type("succeeded")) == 1
    assert code == 0, output
    assert "Traceback" not in output
    assert TOKEN[:12] not in output
