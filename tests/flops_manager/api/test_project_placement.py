"""`POST /api/flops/projects` where learners go to the registered nodes holding the data.

The app runs without the project runtime; a stand-in runtime says its orchestrator
`places_on_nodes` and lists stand-in registered nodes, and records the projects started.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_core.repos import RepoPolicy
from flops_manager.api.deps import get_runtime
from flops_manager.orchestrators import Capabilities
from flops_manager.services.nodes import RegisteredNode
from tests.flops_manager.lifecycle.registered_nodes import registered_node

PROJECTS = "/api/flops/projects"


class StandInRuntime:
    """What the projects route asks of the runtime: its context, and `lifecycle.start`."""

    def __init__(self, nodes: list[RegisteredNode], *, places_on_nodes: bool = True) -> None:
        self.started: list[str] = []
        context = SimpleNamespace(
            repo_policy=RepoPolicy(),
            orchestrator=SimpleNamespace(capabilities=Capabilities(places_on_nodes=places_on_nodes)),
            registered_nodes=lambda: list(nodes),
        )  # fmt: skip
        self.lifecycle = SimpleNamespace(context=context, start=self._start)

    def _start(self, project_id: str, **_: Any) -> None:
        self.started.append(project_id)


@pytest.fixture
def nodes() -> list[RegisteredNode]:
    return [
        registered_node("w1", tags={"Admin:digits": 60, "alice:digits": 5}),
        registered_node("w2", cluster="edgeB", tags={"Admin:digits": 60}),
        registered_node("w3", tags={"Admin:digits": 60}, stale=True),
    ]


def use_runtime(app: FastAPI, runtime: StandInRuntime) -> StandInRuntime:
    app.dependency_overrides[get_runtime] = lambda: runtime
    return runtime


def project(**training: Any) -> dict[str, Any]:
    return {
        "ml_repo_url": "https://git.example.org/me/repo.git", "ml_model_flavor": "sklearn",
        "training_configuration": {"data_tags": ["digits"], **training},
    }  # fmt: skip


def test_more_learners_than_nodes_holding_the_tags_is_a_422_on_learners(
    app: FastAPI, client: TestClient, admin: dict[str, str], nodes: list[RegisteredNode]
) -> None:
    # Prepare
    runtime = use_runtime(app, StandInRuntime(nodes))

    # Execute
    response = client.post(PROJECTS, headers=admin, json=project(learners=3))

    # Assert
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "training_configuration", "learners"]
    assert "3 registered nodes hold data for data_tags digits" in problem["msg"]
    assert "2 can take one (w1, w2)" in problem["msg"] and "w3: stale" in problem["msg"]
    assert runtime.started == [] and client.get(PROJECTS, headers=admin).json() == []


def test_tags_no_node_holds_are_a_422_on_data_tags_in_the_owners_namespace(
    app: FastAPI, client: TestClient, admin: dict[str, str], nodes: list[RegisteredNode]
) -> None:
    # Prepare: alice's "digits" is on w1 only; her "cifar" nowhere
    use_runtime(app, StandInRuntime(nodes))
    token = client.post("/api/flops/tokens", headers=admin, json={"customer_id": "alice"})
    alice = {"Authorization": f"Bearer {token.json()['token']}"}

    # Execute
    missing = client.post(PROJECTS, headers=alice, json=project(data_tags=["cifar"]))
    two = client.post(PROJECTS, headers=alice, json=project(learners=2, min_available_clients=1))
    one = client.post(PROJECTS, headers=alice, json=project())

    # Assert
    assert missing.status_code == 422, missing.text
    assert missing.json()["detail"][0]["loc"] == ["body", "training_configuration", "data_tags"]
    assert "no registered node holds data for data_tags cifar" in missing.text
    assert two.status_code == 422 and "1 registered node holds data" in two.text
    assert one.status_code == 201, one.text


def test_learners_that_fit_the_nodes_start_and_other_backends_do_not_check(
    app: FastAPI, client: TestClient, admin: dict[str, str], nodes: list[RegisteredNode]
) -> None:
    # Execute
    placed = use_runtime(app, StandInRuntime(nodes))
    fits = client.post(PROJECTS, headers=admin, json=project(learners=2))
    local = use_runtime(app, StandInRuntime([], places_on_nodes=False))
    anywhere = client.post(PROJECTS, headers=admin, json=project(learners=5))

    # Assert
    assert (fits.status_code, anywhere.status_code) == (201, 201)
    assert placed.started == [fits.json()["id"]] and local.started == [anywhere.json()["id"]]
