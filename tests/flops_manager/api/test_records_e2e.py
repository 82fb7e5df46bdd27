"""What a real manager records is true: repo credentials, MLflow run status, why a project ended."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = pytest.mark.e2e

SECRET = "s3cret-pa55word-of-the-repo"


def body(repo_url: str, rounds: int) -> dict[str, Any]:
    return {
        "customerID": "Admin", "ml_repo_url": repo_url, "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": rounds, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3,
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    made = ManagerProcess(tmp_path_factory.mktemp("manager"))
    try:
        made.start()
        made.push_mock_data(partitions=3)
        yield made
    finally:
        made.stop()


def training(manager: ManagerProcess, repo_url: str) -> str:
    """A long project's id, once its first round is done (its MLflow run is open)."""
    project_id = str(manager.api("POST", "/projects", json=body(repo_url, 5000)).json()["id"])
    manager.wait_event(project_id, "round_completed")
    return project_id


def run_statuses(manager: ManagerProcess, project_id: str) -> list[str]:
    client = MlflowClient(manager.tracking_url)
    experiment = client.get_experiment_by_name(f"flops-{project_id}")
    assert experiment is not None
    return [run.info.status for run in client.search_runs([experiment.experiment_id])]


def test_a_repo_password_is_stored_nowhere(manager: ManagerProcess) -> None:
    # Prepare: a URL with a password, to a loopback port where no Git server answers
    url = f"https://flops:{SECRET}@127.0.0.1:{free_port()}/ml-repo.git"

    # Execute
    created = manager.api("POST", "/projects", json=body(url, 1))
    assert created.status_code == 201, created.text
    project = manager.wait_state(created.json()["id"], FINAL, timeout=120)

    # Assert: not in the answers, not in any byte of the database
    assert project["state"] == "failed"
    assert project["repo_url"] == "https://***@127.0.0.1:" + url.rsplit(":", 1)[1]
    listed = manager.api("GET", "/projects").text
    events = manager.api("GET", f"/projects/{project['id']}/events").text
    assert SECRET not in json.dumps(project) + listed + events
    database = manager.workdir / "data"
    stored = b"".join(p.read_bytes() for p in database.glob("flops.db*"))
    assert stored and SECRET.encode() not in stored


def test_a_killed_aggregator_leaves_its_mlflow_run_failed(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare
    project_id = training(manager, repo_url)
    services = manager.api("GET", f"/projects/{project_id}").json()["services"]
    (aggregator,) = [s["service_id"] for s in services if s["role"] == "aggregator"]
    record = manager.workdir / "data" / "services" / aggregator / "service.json"
    pgid = json.loads(record.read_text())["pgid"]

    # Execute
    os.killpg(pgid, signal.SIGKILL)

    # Assert
    project = manager.wait_state(project_id, FINAL, timeout=120)
    assert project["state"] == "failed", project["message"]
    assert run_statuses(manager, project_id) == ["FAILED"]


def test_a_stopped_manager_records_that_it_stopped_the_project(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare
    project_id = training(manager, repo_url)

    # Execute: SIGTERM to the manager alone (its services run in groups of their own)
    assert manager.process is not None
    manager.process.send_signal(signal.SIGTERM)
    manager.process.wait(90)
    manager.start()

    # Assert: what happened, not a cancellation nobody asked for; the run ended KILLED
    project = manager.api("GET", f"/projects/{project_id}").json()
    assert project["state"] == "failed"
    assert project["message"].startswith(
        "the manager was stopped (SIGTERM) while the project was training"
    ), project["message"]
    assert run_statuses(manager, project_id) == ["KILLED"]
