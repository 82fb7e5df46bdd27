"""A worker node taken off the network mid-training (its namespace's processes SIGKILLed, the
namespace deleted): its learner drops and the project goes on with the others, or fails naming
the node when too few remain; the node shows `stale` and gets no new learners."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.flops_manager.api.manager_process import FINAL
from tests.multinode.stack import STALE_AFTER_S, BedStack
from tests.multinode.testbed import TestBed
from tests.repos import example_repo
from tests.wait import eventually

pytestmark = [pytest.mark.multinode, pytest.mark.e2e]

SLOW_FIT = """

import time as _time

_fit_model = ModelManager.fit_model


def _slow_fit_model(self):
    _time.sleep(1.0)  # rounds long enough to take a node down during one
    return _fit_model(self)


ModelManager.fit_model = _slow_fit_model
"""


@pytest.fixture(scope="module")
def slow_repo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`examples/sklearn-digits` whose learners take a second per fit."""
    return example_repo(tmp_path_factory.mktemp("repos") / "slow-digits", append=SLOW_FIT)


@pytest.fixture(scope="module")
def stack(bed: TestBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedStack]:
    stack = BedStack(bed, tmp_path_factory.mktemp("stack"))
    try:
        stack.start()
        stack.push_mock_data(partitions=3)
        yield stack
    finally:
        stack.stop()


def body(repo_url: str, min_clients: int, rounds: int) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "resource_constraints": {"memory": 1024, "vcpus": 1},
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": rounds, "round_timeout_s": 30,
            "min_available_clients": min_clients, "min_fit_clients": min_clients,
            "min_evaluate_clients": min_clients,
        },
    }  # fmt: skip


def take_down_during_training(stack: BedStack, project_id: str, node: str) -> dict[str, Any]:
    """Take `node` down once a round has completed; return the project once final."""
    stack.wait_event(project_id, "round_completed")
    stack.bed.take_down(node)
    stack.fake.set_node_active(node, False)  # its cluster stops hearing from it
    return stack.wait_state(project_id, FINAL)


def events_naming(stack: BedStack, project_id: str, node: str) -> list[str]:
    events = stack.api("GET", f"/projects/{project_id}/events").json()
    return [f"{e['type']}: {e['message']}" for e in events if node in e["message"]]


def test_a_node_down_mid_training_drops_its_learner_and_the_others_finish(
    stack: BedStack, slow_repo_url: str
) -> None:
    # Prepare: three learners (one per node), two enough for every round
    created = stack.api("POST", "/projects", json=body(slow_repo_url, min_clients=2, rounds=5))
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]

    # Execute
    project = take_down_during_training(stack, project_id, "w3")

    # Assert: completed with the others; the node is stale
    assert project["state"] == "completed", project["message"]
    learners = [s for s in project["services"] if s["role"] == "learner"]
    assert len(learners) == 3
    assert events_naming(stack, project_id, "w3")
    eventually(
        lambda: stack.node_view("w3")["state"],
        "node w3 shown stale",
        STALE_AFTER_S + 10,
        until=lambda state: state == "stale",
    )
    stack.assert_nothing_left()


def test_too_few_nodes_left_fails_the_project_naming_the_node(
    stack: BedStack, slow_repo_url: str
) -> None:
    # Prepare: w3 is stale (previous test), so the learners go to w1 and w2, both needed
    assert stack.node_view("w3")["state"] == "stale"
    slas_before = len(stack.fake.received_slas)
    created = stack.api("POST", "/projects", json=body(slow_repo_url, min_clients=2, rounds=20))
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]

    # Execute
    project = take_down_during_training(stack, project_id, "w2")

    # Assert
    assert project["state"] == "failed"
    assert "w2" in project["message"], project["message"]
    placed = [
        entry["constraints"][-1]["node"]
        for entry in stack.microservices(slas_before)
        if str(entry["microservice_name"]).startswith("l") and entry.get("constraints")
    ]
    assert sorted(placed) == ["w1", "w2"]
    stack.assert_nothing_left()
