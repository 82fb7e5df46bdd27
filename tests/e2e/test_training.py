"""Federated training end to end on local processes, with real MLflow and a real data server."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits

from flops_core.mlflow_server import MlflowServer
from tests.conftest import EventReceiver, free_port
from tests.e2e.conftest import EXAMPLES, Processes

pytestmark = pytest.mark.e2e


def _project() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


def _train(
    procs: Processes,
    *,
    repo: Path,
    project: str,
    data_server: str,
    mlflow_server: MlflowServer,
    events: EventReceiver,
    rounds: int,
    flavor: str = "sklearn",
    min_fit: int = 3,
) -> tuple[int, list[int]]:
    port = free_port()
    aggregator = procs.aggregator(
        project, repo, port,
        "--flavor", flavor,
        "--rounds", str(rounds),
        "--min-available-clients", "3",
        "--min-fit-clients", str(min_fit),
        "--min-evaluate-clients", str(min_fit),
        "--mlflow-uri", mlflow_server.url,
        "--callback-url", events.url,
        "--connect-timeout", "90",
        "--repo-url", "https://user:secret-token@git.example.org/ml/digits.git",
        "--commit", "0123abcd",
    )  # fmt: skip
    learners = [procs.learner(f"l{i}", repo, port, data_server, f"digits-{i}") for i in range(3)]
    return aggregator.wait(240), [learner.wait(60) for learner in learners]


def _metric(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_sklearn_digits_trains_five_rounds_and_registers_champion(
    procs: Processes, data_server: str, mlflow_server: MlflowServer, events: EventReceiver
) -> None:
    # Prepare
    project = _project()

    # Execute
    aggregator_code, learner_codes = _train(
        procs, repo=EXAMPLES / "sklearn-digits", project=project, data_server=data_server,
        mlflow_server=mlflow_server, events=events, rounds=5,
    )  # fmt: skip

    # Assert: everyone finished cleanly
    assert aggregator_code == 0, procs.started[0].output()
    assert learner_codes == [0, 0, 0]
    # Assert: every round is in MLflow at step=round, and training improved the model
    client = MlflowClient(mlflow_server.url)
    succeeded = events.wait_for("succeeded")
    run = client.get_run(succeeded["data"]["mlflow_run_id"])
    accuracy = _metric(client, run.info.run_id, "accuracy")
    assert len(accuracy) == 5
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4, 5]
    assert accuracy[-1] >= 0.85
    assert accuracy[-1] > accuracy[0]
    for key in ("examples", "round_duration_s"):
        assert len(_metric(client, run.info.run_id, key)) == 5
    assert run.data.params["rounds"] == "5"
    assert run.data.params["strategy"] == "FedAvg"
    assert run.data.tags["flops.commit"] == "0123abcd"
    assert "secret-token" not in run.data.tags["flops.repo_url"]
    assert run.info.status == "FINISHED"
    # Assert: the champion model loads from the registry and predicts digits
    version = client.get_model_version_by_alias(f"flops-{project}", "champion")
    assert version.version == succeeded["data"]["model"]["version"]
    mlflow.set_tracking_uri(mlflow_server.url)
    model = mlflow.pyfunc.load_model(f"models:/flops-{project}@champion")
    x, y = load_digits(return_X_y=True)
    predictions = np.asarray(model.predict(x / 16.0))
    assert (predictions == y).mean() >= 0.85
    # Assert: events tell the story in order
    kinds = [e["type"] for e in events.events if e["source"] == "aggregator"]
    assert kinds[0] == "started" and kinds[-1] == "succeeded"
    assert [e["data"]["round"] for e in events.of_type("round_completed")] == [1, 2, 3, 4, 5]


def test_pytorch_digits_trains(
    procs: Processes, data_server: str, mlflow_server: MlflowServer, events: EventReceiver
) -> None:
    # Prepare
    project = _project()

    # Execute
    aggregator_code, learner_codes = _train(
        procs, repo=EXAMPLES / "pytorch-digits", project=project, data_server=data_server,
        mlflow_server=mlflow_server, events=events, rounds=2, flavor="pytorch",
    )  # fmt: skip

    # Assert
    assert aggregator_code == 0, procs.started[0].output()
    assert learner_codes == [0, 0, 0]
    succeeded = events.wait_for("succeeded")
    client = MlflowClient(mlflow_server.url)
    assert len(_metric(client, succeeded["data"]["mlflow_run_id"], "accuracy")) == 2
    assert succeeded["data"]["metrics"]["accuracy"] >= 0.8
    mlflow.set_tracking_uri(mlflow_server.url)
    model = mlflow.pytorch.load_model(f"models:/flops-{project}@champion")
    x, y = load_digits(return_X_y=True)
    import torch

    with torch.no_grad():
        predictions = model(torch.tensor(x / 16.0, dtype=torch.float32)).argmax(dim=1).numpy()
    assert (predictions == y).mean() >= 0.8


def test_pytorch_digits_trains_with_fedprox(
    procs: Processes, data_server: str, events: EventReceiver
) -> None:
    # Prepare: FedProx sends proximal_mu, which the example's configure_round takes
    port = free_port()
    repo = EXAMPLES / "pytorch-digits"
    aggregator = procs.aggregator(
        _project(), repo, port, "--flavor", "pytorch", "--rounds", "2",
        "--strategy", "FedProx", "--strategy-params", '{"proximal_mu": 0.1}',
        "--callback-url", events.url, "--connect-timeout", "90",
    )  # fmt: skip

    # Execute
    learner = procs.learner("l0", repo, port, data_server, "digits-0")

    # Assert
    assert aggregator.wait(180) == 0, aggregator.output()
    assert learner.wait(60) == 0, learner.output()
    assert events.wait_for("started")["data"]["strategy"] == "FedProx"
    assert events.wait_for("succeeded")["data"]["metrics"]["accuracy"] >= 0.8


def test_training_survives_a_killed_learner(
    procs: Processes, data_server: str, mlflow_server: MlflowServer, events: EventReceiver
) -> None:
    # Prepare: 3 learners, 2 needed per round, many rounds so that the kill lands mid-training
    project = _project()
    port = free_port()
    repo = EXAMPLES / "sklearn-digits"
    aggregator = procs.aggregator(
        project, repo, port,
        "--rounds", "30",
        "--min-available-clients", "3",
        "--min-fit-clients", "2",
        "--min-evaluate-clients", "2",
        "--mlflow-uri", mlflow_server.url,
        "--callback-url", events.url,
        "--connect-timeout", "90",
    )  # fmt: skip
    learners = [procs.learner(f"l{i}", repo, port, data_server, f"digits-{i}") for i in range(3)]

    # Execute: kill one learner once training is under way
    events.wait_for("round_completed", lambda e: e["data"]["round"] >= 2, timeout=120)
    os.killpg(learners[2].process.pid, signal.SIGKILL)

    # Assert: training completes on the remaining two and records the drop
    assert aggregator.wait(240) == 0, aggregator.output()
    assert [learners[0].wait(60), learners[1].wait(60)] == [0, 0]
    succeeded = events.wait_for("succeeded")
    assert len(succeeded["data"]["learners_dropped"]) == 1
    assert events.of_type("learner_dropped")
    run = MlflowClient(mlflow_server.url).get_run(succeeded["data"]["mlflow_run_id"])
    assert run.data.tags["flops.learners_dropped"] == "1"
    assert run.data.metrics["learners"] == 2.0


def test_learner_started_before_its_aggregator_waits_for_it(
    procs: Processes, data_server: str, events: EventReceiver
) -> None:
    # Prepare: the learner comes up first, as when its image is pulled faster
    port = free_port()
    repo = EXAMPLES / "sklearn-digits"
    learner = procs.learner("l0", repo, port, data_server, "digits-0", "--connect-timeout", "60")
    time.sleep(4)

    # Execute
    aggregator = procs.aggregator(
        _project(), repo, port, "--rounds", "2", "--callback-url", events.url
    )

    # Assert
    assert aggregator.wait(120) == 0, aggregator.output()
    assert learner.wait(60) == 0, learner.output()
    assert "not reachable yet, retrying" in learner.output()
    assert len(events.of_type("round_completed")) == 2
