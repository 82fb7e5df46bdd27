"""Whole projects through a real manager on the `oakestra` backend, against the fake root.

The fake (tests/fakes/oakestra) runs each instance's `cmd` as a local process, so the manager
runs with `FLOPS_SERVICE_RUNTIME=environment`: its services are the Python environment it
builds on this machine, named in the SLAs by the images it would otherwise build.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import eventually
from tests.fakes.oakestra import FakeCluster, FakeNode, FakeOakestra
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "tests/fakes/oakestra/sla_schema.json").read_text())
OAK_PASSWORD = "flops-deployer-password-0123"


class Setup(ManagerProcess):
    """The fake Oakestra root with two clusters and a manager deploying through it."""

    def __init__(self, workdir: Path) -> None:
        clusters = [
            FakeCluster("clusterA", nodes=[FakeNode("a1", memory_mb=16384, vcpus=8)]),
            FakeCluster("clusterB", nodes=[FakeNode("b1", memory_mb=16384, vcpus=8)]),
        ]
        self.fake = FakeOakestra(
            users={"flops": OAK_PASSWORD}, clusters=clusters, state_dir=workdir / "oakestra",
            step_delay_s=0.05,
        )  # fmt: skip
        self.fake.start()
        super().__init__(
            workdir, FLOPS_LOCAL_NODES="4", FLOPS_ORCHESTRATOR="oakestra",
            FLOPS_SERVICE_RUNTIME="environment", FLOPS_OAKESTRA_URL=self.fake.url,
            FLOPS_OAKESTRA_USERNAME="flops", FLOPS_OAKESTRA_PASSWORD=OAK_PASSWORD,
            FLOPS_OAKESTRA_BACKOFF_S="0.05", FLOPS_OAKESTRA_POLL_S="0.2",
            FLOPS_OAKESTRA_SCHEDULE_TIMEOUT_S="60",
        )  # fmt: skip

    def stop(self) -> None:
        super().stop()
        self.fake.stop()

    def assert_nothing_left(self) -> None:
        """Every service deleted, the application too, no instance process alive."""
        eventually(lambda: self.fake.services() == [], "every service deleted", 10, interval=0.1)
        assert self.fake.applications() == []
        assert self.fake.running_instances() == []


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("oakestra-e2e"))
    try:
        setup.start()
        setup.push_mock_data(partitions=4)
        yield setup
    finally:
        setup.stop()


def _body(repo_url: str, **training: Any) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "resource_constraints": {"memory": 1024, "vcpus": 1},
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": 3, "min_available_clients": 2,
            "min_fit_clients": 2, "min_evaluate_clients": 2, **training,
        },
    }  # fmt: skip


def test_a_classic_project_completes_through_oakestra_despite_expiry_and_errors(
    setup: Setup, repo_url: str
) -> None:
    # Prepare: the first application POST fails with a 500 (retried)
    setup.fake.fail_next(method="POST", path=r"^/api/application/?$", status=500, times=1)
    slas_before = len(setup.fake.received_slas)

    # Execute: tokens expire in the middle of training; the model is served afterwards
    body = _body(repo_url) | {
        "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"]
    }
    project_id = setup.api("POST", "/projects", json=body).json()["id"]
    setup.wait_event(project_id, "round_completed")
    setup.fake.expire_tokens()
    project = setup.wait_state(project_id, FINAL)

    # Assert
    assert project["state"] == "completed", project["message"]
    assert project["result"]["training"]["metrics"]["accuracy"] >= 0.8
    requests = setup.fake.requests
    assert (
        "POST",
        "/api/application/",
        500,
    ) in requests or ("POST", "/api/application", 500) in requests
    assert any(status == 401 for _, _, status in requests)
    assert sum(1 for m, p, s in requests if p == "/api/auth/login" and s == 200) >= 2
    slas = setup.fake.received_slas[slas_before:]
    assert slas, "the manager sent no SLA"
    for sla in slas:
        jsonschema.validate(sla, SCHEMA)
    names = [
        m["microservice_name"] for sla in slas for m in sla["applications"][0]["microservices"]
    ]
    assert sum(n.startswith("agg") for n in names) == 1
    assert sum(n.startswith("l") for n in names) == 2
    # The inference service runs through Oakestra too, until the project is deleted
    assert sum(n.startswith("inf") for n in names) == 1
    url = project["result"]["inference_url"]
    assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
    assert [s["role"] for s in project["services"] if not s["undeployed_at"]] == ["inference"]
    assert setup.api("DELETE", f"/projects/{project_id}").status_code == 200
    setup.assert_nothing_left()


def test_a_hierarchical_project_trains_per_cluster_through_oakestra(
    setup: Setup, repo_url: str
) -> None:
    # Prepare
    slas_before = len(setup.fake.received_slas)
    body = _body(repo_url, mode="hierarchical", learners=4, training_rounds=2, training_cycles=2)

    # Execute
    created = setup.api("POST", "/projects", json=body)
    assert created.status_code == 201, created.text
    project = setup.wait_state(created.json()["id"], FINAL)

    # Assert: one cluster aggregator and two learners per cluster, each pinned to its cluster
    assert project["state"] == "completed", project["message"]
    assert project["result"]["clusters"] == {"clusterA": 2, "clusterB": 2}
    entries = [
        m for sla in setup.fake.received_slas[slas_before:]
        for m in sla["applications"][0]["microservices"]
    ]  # fmt: skip
    for sla in setup.fake.received_slas[slas_before:]:
        jsonschema.validate(sla, SCHEMA)
    placed: dict[str, list[str]] = {}
    for entry in entries:
        for constraint in entry.get("constraints", []):
            placed.setdefault(constraint["cluster"], []).append(entry["microservice_name"])
    assert sorted(placed) == ["clusterA", "clusterB"]
    assert all(len(names) == 3 for names in placed.values()), placed  # aggregator + 2 learners
    training = project["result"]["training"]
    client = MlflowClient(setup.api("GET", "/tracking").json()["tracking_url"])
    root = client.get_run(training["mlflow_run_id"])
    assert len(client.get_metric_history(root.info.run_id, "accuracy")) == 2
    setup.assert_nothing_left()


def test_negative_scheduling_fails_the_project_and_undeploys_everything(
    setup: Setup, repo_url: str
) -> None:
    # Execute: no node has this much memory
    body = _body(repo_url) | {"resource_constraints": {"memory": 900_000, "vcpus": 1}}
    project = setup.wait_state(setup.api("POST", "/projects", json=body).json()["id"], FINAL)

    # Assert
    assert project["state"] == "failed"
    assert "NoActiveClusterWithCapacity" in project["message"], project["message"]
    assert all(s["undeployed_at"] for s in project["services"])
    setup.assert_nothing_left()
