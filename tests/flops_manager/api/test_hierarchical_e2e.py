"""Hierarchical FL through a real manager on the `local` backend with configured clusters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    manager = ManagerProcess(
        tmp_path_factory.mktemp("hfl"), FLOPS_LOCAL_NODES="4", FLOPS_CLUSTERS="edgeA,edgeB"
    )
    try:
        manager.start()
        manager.push_mock_data(partitions=4)
        yield manager
    finally:
        manager.stop()


def _body(repo_url: str, **training: Any) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "min_available_clients": 2, "min_fit_clients": 2,
            "min_evaluate_clients": 2, **training,
        },
    }  # fmt: skip


def test_hierarchical_matches_classic_with_the_same_learners_and_rounds(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Execute: 4 learners; classic 4 rounds against 2 cycles of 2 rounds in 2 clusters
    classic = manager.run(_body(repo_url, learners=4, training_rounds=4))
    hierarchical = manager.run(
        _body(repo_url, learners=4, mode="hierarchical", training_cycles=2, training_rounds=2)
    )

    # Assert
    assert classic["state"] == "completed", classic["message"]
    assert hierarchical["state"] == "completed", hierarchical["message"]
    assert hierarchical["result"]["clusters"] == {"edgeA": 2, "edgeB": 2}
    assert "2 cycles of 2 rounds in 2 clusters" in hierarchical["message"]
    accuracy = hierarchical["result"]["training"]["metrics"]["accuracy"]
    assert abs(accuracy - classic["result"]["training"]["metrics"]["accuracy"]) <= 0.03
    # MLflow: the root run has one accuracy per cycle; each cluster's run is its child,
    # tagged with the cluster, with one accuracy per cluster round
    client = MlflowClient(manager.api("GET", "/tracking").json()["tracking_url"])
    root = client.get_run(hierarchical["result"]["training"]["mlflow_run_id"])
    assert len(client.get_metric_history(root.info.run_id, "accuracy")) == 2
    children = client.search_runs(
        [root.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{root.info.run_id}'"
    )
    assert sorted(run.data.tags["flops.cluster"] for run in children) == ["edgeA", "edgeB"]
    for run in children:
        assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 4
    roles = [s["role"] for s in hierarchical["services"]]
    assert roles.count("aggregator") == 3 and roles.count("learner") == 4
    assert all(s["undeployed_at"] for s in hierarchical["services"])


def test_a_cluster_without_learners_is_reported_and_left_out(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Execute: one learner for two clusters
    project = manager.run(
        _body(repo_url, learners=1, min_available_clients=1, min_fit_clients=1,
              min_evaluate_clients=1, mode="hierarchical", training_cycles=1, training_rounds=1)
    )  # fmt: skip

    # Assert
    assert project["state"] == "completed", project["message"]
    assert project["result"]["clusters"] == {"edgeA": 1}
    events = manager.api("GET", f"/projects/{project['id']}/events").json()
    reported = [e["message"] for e in events if e["type"] == "cluster_without_learners"]
    assert reported and "edgeB" in reported[0]


def test_clusters_whose_learners_cannot_train_fail_the_project_naming_them(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Execute: data nobody has; the learners give up, so no cluster gets a learner
    body = _body(repo_url, learners=2, mode="hierarchical", training_cycles=1,
                 training_rounds=1, connect_timeout_s=8)  # fmt: skip
    body["training_configuration"]["data_tags"] = ["nobodyhasthis"]
    project = manager.run(body, timeout=180)

    # Assert: the reason names a cluster and carries the learners' own reason
    assert project["state"] == "failed"
    assert "cluster edge" in project["message"], project["message"]
    assert "no training data" in project["message"] or "nobodyhasthis" in project["message"]
    assert all(s["undeployed_at"] for s in project["services"])
