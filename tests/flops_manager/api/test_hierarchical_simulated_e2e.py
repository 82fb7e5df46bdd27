"""The original oak CLI's hierarchical SLA on the embedded default with no clusters configured.

No FLOPS_CLUSTERS: the embedded default splits its simulated nodes into clusters itself, says
which in the project's events, and the body trains as is, post-training steps included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: `hierarchical_mnist_sklearn_small.json` of the original oak CLI; only the repo URL differs.
ORIGINAL_SLA = """{
    "verbose": true,
    "customerID": "Admin",
    "ml_repo_url": "REPO",
    "ml_model_flavor": "sklearn",
    "use_devel_base_images": false,
    "supported_platforms": ["linux/amd64"],
    "training_configuration": {
        "mode": "hierarchical",
        "data_tags": ["mnist"],
        "training_cycles": 2,
        "training_rounds": 3,
        "min_available_clients":2,
        "min_fit_clients": 2,
        "min_evaluate_clients": 2
    },
    "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"],
    "resource_constraints": {
        "memory": 100,
        "vcpus": 1,
        "storage": 0
    }
}"""


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    """The embedded default with its three simulated nodes and no FLOPS_CLUSTERS."""
    manager = ManagerProcess(tmp_path_factory.mktemp("hfl-simulated"))
    assert "FLOPS_CLUSTERS" not in manager.env
    try:
        manager.start()
        manager.push_mock_data(partitions=3, dataset="digits", tag="mnist")
        yield manager
    finally:
        manager.stop()


#: The large variant, `hierarchical_mnist_sklearn_large.json`: the same with bigger numbers.
LARGE = {"training_cycles": 10, "training_rounds": 5, "min_available_clients": 3,
         "min_fit_clients": 3, "min_evaluate_clients": 3}  # fmt: skip


@pytest.mark.parametrize(
    ("training", "split"),
    [
        pytest.param(
            {}, ["sim0: node0, node1 (learner0, learner1)", "sim1: node2 (learner2, learner3)"],
            id="small",
        ),
        pytest.param(
            LARGE,
            ["sim0: node0, node1 (learner0, learner1, learner2)",
             "sim1: node2 (learner3, learner4, learner5)"],
            id="large",
        ),
    ],
)  # fmt: skip
def test_the_original_hierarchical_sla_trains_in_simulated_clusters(
    manager: ManagerProcess, repo_url: str, training: dict[str, int], split: list[str]
) -> None:
    # Prepare
    body: dict[str, Any] = json.loads(ORIGINAL_SLA.replace("REPO", repo_url))
    body["training_configuration"].update(training)
    config = body["training_configuration"]
    per_cluster = config["min_available_clients"]

    # Execute
    project = manager.run(body, timeout=480)

    # Assert: completed in two clusters of min_available_clients learners each
    assert project["state"] == "completed", project["message"]
    assert project["result"]["clusters"] == {"sim0": per_cluster, "sim1": per_cluster}
    cycles, rounds = config["training_cycles"], config["training_rounds"]
    assert f"{cycles} cycles of {rounds} rounds in 2 clusters" in project["message"]
    roles = [s["role"] for s in project["services"]]
    assert roles.count("aggregator") == 3 and roles.count("learner") == 2 * per_cluster
    # The split is in the events: which nodes and learners make up each cluster
    events = manager.api("GET", f"/projects/{project['id']}/events").json()
    simulated = [e for e in events if e["type"] == "clusters_simulated"]
    assert len(simulated) == 1, [e["type"] for e in events]
    message = simulated[0]["message"]
    assert "FLOPS_CLUSTERS" in message
    assert all(cluster in message for cluster in split), message
    assert simulated[0]["data"]["clusters"]["sim1"]["nodes"] == ["node2"]
    # The post-training steps ran as they do for a classic project: the model is served
    steps = project["result"]["post_training"]
    assert [steps[s]["state"] for s in body["post_training_steps"]] == ["completed"] * 2
    url = project["result"]["inference_url"]
    assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
    deleted = manager.api("DELETE", f"/projects/{project['id']}")
    assert deleted.status_code == 200, deleted.text
