"""Bad input ends quickly, with a reason that names what is wrong, and leaves nothing running."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flops_core.mlflow_server import MlflowServer
from tests.conftest import EventReceiver, free_port
from tests.e2e.conftest import EXAMPLES, Processes

pytestmark = pytest.mark.e2e

SKLEARN = EXAMPLES / "sklearn-digits"


def test_unknown_strategy_fails_at_start_listing_the_choices(
    procs: Processes, events: EventReceiver
) -> None:
    # Execute
    aggregator = procs.aggregator(
        "bad-strategy", SKLEARN, free_port(), "--strategy", "FedAverage",
        "--callback-url", events.url,
    )  # fmt: skip

    # Assert
    assert aggregator.wait(60) == 2
    output = aggregator.output()
    assert "unknown strategy 'FedAverage'" in output
    for name in ("FedAvg", "FedProx", "FedAdam", "FedYogi", "Krum", "FedTrimmedAvg"):
        assert name in output
    failed = events.wait_for("failed")
    assert "FedAverage" in failed["data"]["reason"]
    assert not events.of_type("started")


@pytest.mark.parametrize(
    ("strategy", "params", "expected"),
    [
        ("FedProx", "{}", "needs parameter proximal_mu"),
        ("FedAvg", '{"fraction_fit": 2}', "fraction_fit must be between 0 and 1"),
        ("Krum", '{"num_malicious": 1}', "valid parameters: fraction_fit"),
        ("FedAdam", '{"eta": "fast"}', "eta must be a number"),
    ],
)
def test_bad_strategy_parameter_fails_at_start(
    procs: Processes, strategy: str, params: str, expected: str
) -> None:
    # Execute
    aggregator = procs.aggregator(
        "bad-param", SKLEARN, free_port(), "--strategy", strategy, "--strategy-params", params
    )

    # Assert
    assert aggregator.wait(60) == 2
    assert expected in aggregator.output()


def test_data_tags_without_data_fail_the_learner_and_end_the_aggregator(
    procs: Processes, data_server: str, events: EventReceiver
) -> None:
    # Prepare
    port = free_port()
    aggregator = procs.aggregator(
        "no-data", SKLEARN, port, "--connect-timeout", "8", "--callback-url", events.url
    )

    # Execute
    started = time.monotonic()
    learner = procs.learner("l0", SKLEARN, port, data_server, "no-such-tag")

    # Assert: the learner says why, the aggregator gives up within its timeout
    assert learner.wait(60) == 1
    assert "no training data" in learner.output()
    assert "no-such-tag" in learner.output()
    assert aggregator.wait(60) == 1
    assert time.monotonic() - started < 40
    reason = events.wait_for("failed", lambda e: e["source"] == "aggregator")["data"]["reason"]
    assert "learners" in reason and "8 s" in reason


def test_exception_in_fit_model_is_reported_with_its_line(
    procs: Processes, data_server: str, tmp_path: Path
) -> None:
    # Prepare: a copy of the example whose fit_model raises
    repo = tmp_path / "broken-repo"
    repo.mkdir()
    for name in ("data_manager.py", "requirements.txt"):
        (repo / name).write_text((SKLEARN / name).read_text())
    source = (SKLEARN / "model_manager.py").read_text()
    (repo / "model_manager.py").write_text(
        source.replace(
            "    def fit_model(self):\n",
            "    def fit_model(self):\n        raise RuntimeError('diverged')\n",
        )
    )
    port = free_port()
    aggregator = procs.aggregator("fit-raises", repo, port, "--connect-timeout", "30")

    # Execute
    learner = procs.learner("l0", repo, port, data_server, "digits-0")

    # Assert
    assert learner.wait(60) == 1
    assert "ModelManager.fit_model() raised RuntimeError: diverged (at model_manager.py:" in (
        learner.output()
    )
    assert aggregator.wait(60) == 1
    assert "round 1: 0 learners returned training results" in aggregator.output()


def test_fedprox_round_for_a_model_manager_without_configure_round_fails_the_learner(
    procs: Processes, data_server: str
) -> None:
    # Prepare: a real FedProx aggregator for the sklearn example, which cannot take proximal_mu
    port = free_port()
    aggregator = procs.aggregator(
        "fedprox-sklearn", SKLEARN, port, "--strategy", "FedProx",
        "--strategy-params", '{"proximal_mu": 0.1}', "--connect-timeout", "30",
    )  # fmt: skip

    # Execute
    learner = procs.learner("l0", SKLEARN, port, data_server, "digits-0")

    # Assert: the learner refuses the first round instead of training it as FedAvg
    assert learner.wait(60) == 1
    assert "strategy FedProx needs ModelManager.configure_round(config)" in learner.output()
    assert aggregator.wait(60) == 1
    assert "round 1: 0 learners returned training results" in aggregator.output()


def test_learner_without_data_server_says_so(procs: Processes) -> None:
    # Execute
    learner = procs.learner(
        "l0", SKLEARN, free_port(), f"grpc://127.0.0.1:{free_port()}", "digits-0"
    )

    # Assert
    assert learner.wait(60) == 1
    assert "flops-data-server serve" in learner.output()


def test_contract_violation_stops_aggregator_and_learner_before_they_run(
    procs: Processes, data_server: str, tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: a ModelManager missing most of the contract, and no dependency file
    repo = tmp_path / "incomplete-repo"
    repo.mkdir()
    (repo / "model_manager.py").write_text(
        "class ModelManager:\n    def fit_model(self):\n        return 1\n"
    )
    port = free_port()

    # Execute
    aggregator = procs.aggregator("contract", repo, port, "--callback-url", events.url)
    learner = procs.learner("l0", repo, port, data_server, "digits-0")

    # Assert: both refuse with the checker's message, each problem named
    assert aggregator.wait(60) == 2
    assert learner.wait(60) == 1
    for proc in (aggregator, learner):
        output = proc.output()
        assert "does not define set_model_data(), get_model()" in output
        assert "no dependency file at the repo root" in output
    assert "[missing_methods]" in events.wait_for("failed")["data"]["reason"]
    assert not events.of_type("started")


def test_sigterm_closes_the_run_and_reports_why(
    procs: Processes, mlflow_server: MlflowServer, events: EventReceiver
) -> None:
    # Prepare: an aggregator waiting for learners that never come
    aggregator = procs.aggregator(
        "sigterm", SKLEARN, free_port(), "--mlflow-uri", mlflow_server.url,
        "--callback-url", events.url,
    )  # fmt: skip
    run_id = events.wait_for("started")["data"]["mlflow_run_id"]

    # Execute
    aggregator.process.send_signal(signal.SIGTERM)

    # Assert
    assert aggregator.wait(30) == 143
    assert events.wait_for("failed")["data"]["reason"] == "stopped by SIGTERM"
    assert MlflowClient(mlflow_server.url).get_run(run_id).info.status == "KILLED"
