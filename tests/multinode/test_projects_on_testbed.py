"""Whole projects through the `oakestra` backend on the test bed: three worker nodes in two
clusters, each a network namespace with its own address and its own registered data server.

What these prove: data lands on and is read from its own node only, learners go to the nodes
that hold the project's tags (pinned by `direct` constraints), hierarchical FL groups them by
their nodes' clusters, no service is told a loopback address, and what the Oakestra backend
proved on one host still holds (token expiry mid-training, a 500 retried, SLAs valid against
Oakestra's schema, inference served through Oakestra, negative scheduling undeploys all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
from mlflow.tracking import MlflowClient

from tests.flops_manager.api.manager_process import FINAL, ROOT
from tests.multinode.stack import BedStack
from tests.multinode.testbed import TestBed
from tests.wait import eventually

pytestmark = [pytest.mark.multinode, pytest.mark.e2e]

SCHEMA = json.loads((ROOT / "tests/fakes/oakestra/sla_schema.json").read_text())
ADMIN_TAG = "Admin:digits"
"""Where the admin's `digits` is stored on the data servers."""


@pytest.fixture(scope="module")
def stack(bed: TestBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedStack]:
    stack = BedStack(bed, tmp_path_factory.mktemp("stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _projects_deleted(stack: BedStack) -> Iterator[None]:
    """Every test starts with nothing deployed, even after a failed test."""
    yield
    stack.delete_projects()
    eventually(lambda: stack.fake.services() == [], "every service deleted", 30)


@pytest.fixture(scope="module")
def mock_job(stack: BedStack) -> dict[str, Any]:
    """Three partitions of digits for the admin, pushed through the API."""
    mock = {"dataset_name": "digits", "number_of_partitions": 3, "data_tag": "digits"}
    response = stack.api(
        "POST", "/mocks", json={"customerID": "Admin", "mock_data_configuration": mock}
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    stack.wait_tag_reported(ADMIN_TAG, 3)
    return job


def body(repo_url: str, **training: Any) -> dict[str, Any]:
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


def learners_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The learner microservices (named `l...`) of SLA entries."""
    return [e for e in entries if str(e["microservice_name"]).startswith("l")]


def direct(entry: dict[str, Any]) -> tuple[str, str]:
    """(cluster, node) of an SLA entry's last `direct` constraint."""
    [*_, constraint] = [c for c in entry.get("constraints", []) if c.get("type") == "direct"]
    return constraint["cluster"], constraint.get("node", "")


def data_server_of(entry: dict[str, Any]) -> str:
    """The `--data-server` an SLA entry's command gives its learner."""
    cmd = [str(arg) for arg in entry.get("cmd", [])]
    return cmd[cmd.index("--data-server") + 1]


def assert_reads_only_local(stack: BedStack) -> None:
    """Every node's data server was read only from its own node's address."""
    for view in stack.nodes():
        node = stack.bed.node(view["name"])
        assert set(view["reads"]) <= {node.address}, (view["name"], view["reads"])


# Data on the nodes ------------------------------------------------------------------------
def test_mock_data_lands_one_partition_on_each_node_and_the_nodes_show_it(
    stack: BedStack, mock_job: dict[str, Any]
) -> None:
    # Prepare: a customer with its own data
    created = stack.api("POST", "/tokens", json={"customer_id": "alice", "label": "t"})
    assert created.status_code == 201, created.text
    alice = {"Authorization": f"Bearer {created.json()['token']}"}
    mock = {"dataset_name": "digits", "number_of_partitions": 3, "data_tag": "mine"}
    pushed = stack.api("POST", "/mocks", json={"mock_data_configuration": mock}, headers=alice)
    assert pushed.status_code == 201, pushed.text
    stack.wait_tag_reported("alice:mine", 3)

    # Execute
    admin_view = {n["name"]: n for n in stack.nodes()}
    alice_view = {n["name"]: n for n in stack.nodes(headers=alice)}

    # Assert: partition i went to node i through its own address, and each node says so
    partitions = mock_job["partitions"]
    assert mock_job["state"] == "completed", mock_job["message"]
    assert sorted(p["data_server"] for p in partitions) == sorted(
        n.data_server_url for n in stack.bed.nodes.values()
    )
    for partition in partitions:
        [name] = [n.name for n in stack.bed.nodes.values()
                  if n.data_server_url == partition["data_server"]]  # fmt: skip
        tags = {t["tag"]: t["rows"] for t in admin_view[name]["tags"]}
        assert tags[ADMIN_TAG] == partition["rows"] > 0, admin_view[name]
        assert admin_view[name]["address"] == stack.bed.node(name).address
        assert admin_view[name]["cluster"] == stack.bed.node(name).cluster
        assert admin_view[name]["state"] == "ready" and not admin_view[name]["simulated"]
        files = [p.name for p in stack.bed.node(name).data_dir.rglob(f"{ADMIN_TAG}.*")]
        assert len(files) == 1, files
    for name, view in alice_view.items():
        assert [t["tag"] for t in view["tags"]] == ["mine"], view  # not the admin's
        assert "address" not in view and "reads" not in view
        assert view["cluster"] == stack.bed.node(name).cluster


# Projects ---------------------------------------------------------------------------------
def test_a_classic_project_trains_where_the_data_is_despite_expiry_and_errors(
    stack: BedStack, mock_job: dict[str, Any], repo_url: str
) -> None:
    # Prepare: the first application POST fails with a 500 (retried)
    stack.fake.fail_next(method="POST", path=r"^/api/application/?$", status=500, times=1)
    slas_before = len(stack.fake.received_slas)
    request = body(repo_url) | {
        "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"]
    }

    # Execute: tokens expire in the middle of training; the model is served afterwards
    created = stack.api("POST", "/projects", json=request)
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    stack.wait_event(project_id, "round_completed")
    running = [(i, stack.bed.pids(i.node)) for i in stack.fake.running_instances()]
    stack.fake.expire_tokens()
    project = stack.wait_state(project_id, FINAL)

    # Assert: it completed through retries and fresh logins
    assert project["state"] == "completed", project["message"]
    assert project["result"]["training"]["metrics"]["accuracy"] >= 0.8
    requests = stack.fake.requests
    assert any(s == 500 and p.startswith("/api/application") for _, p, s in requests)
    assert any(status == 401 for _, _, status in requests)
    assert sum(1 for m, p, s in requests if p == "/api/auth/login" and s == 200) >= 2
    slas = stack.fake.received_slas[slas_before:]
    for sla in slas:
        jsonschema.validate(sla, SCHEMA)
    # one learner per node holding the tag, pinned there, reading that node's data server
    entries = stack.microservices(slas_before)
    learners = learners_of(entries)
    assert sorted(direct(e) for e in learners) == sorted(
        (n.cluster, n.name) for n in stack.bed.nodes.values()
    )
    for entry in learners:
        node = stack.bed.node(direct(entry)[1])
        assert data_server_of(entry) == node.data_server_url
    events = stack.api("GET", f"/projects/{project_id}/events").json()
    placed = [e for e in events if e["type"] == "learners_placed"]
    assert [sorted(e["data"]["learners"].values()) for e in placed] == [["w1", "w2", "w3"]]
    # every instance ran inside the namespace of the node Oakestra placed it on
    assert running and all(i.pid in pids for i, pids in running), running
    assert_reads_only_local(stack)
    for view in stack.nodes():  # each learner read its own node's data
        assert view["reads"].get(stack.bed.node(view["name"]).address, 0) > 0, view
    assert stack.loopback_mentions(slas_before) == []
    # the inference service runs through Oakestra on a node, until the project is deleted
    assert sum(e["microservice_name"].startswith("inf") for e in entries) == 1
    url = project["result"]["inference_url"]
    assert urlsplit(url).hostname in {n.address for n in stack.bed.nodes.values()}, url
    assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
    assert [s["role"] for s in project["services"] if not s["undeployed_at"]] == ["inference"]
    assert stack.api("DELETE", f"/projects/{project_id}").status_code == 200
    stack.assert_nothing_left()


def test_a_hierarchical_project_groups_learners_by_their_nodes_clusters(
    stack: BedStack, mock_job: dict[str, Any], repo_url: str
) -> None:
    # Prepare
    slas_before = len(stack.fake.received_slas)
    request = body(repo_url, mode="hierarchical", training_rounds=2, training_cycles=2)

    # Execute
    created = stack.api("POST", "/projects", json=request)
    assert created.status_code == 201, created.text
    project = stack.wait_state(created.json()["id"], FINAL)

    # Assert: a cluster aggregator per cluster and the learners of its nodes, all pinned there
    assert project["state"] == "completed", project["message"]
    assert project["result"]["clusters"] == {"c1": 2, "c2": 1}
    for sla in stack.fake.received_slas[slas_before:]:
        jsonschema.validate(sla, SCHEMA)
    entries = stack.microservices(slas_before)
    by_cluster: dict[str, list[str]] = {}
    for entry in entries:
        if entry.get("constraints"):
            by_cluster.setdefault(direct(entry)[0], []).append(entry["microservice_name"])
    assert sorted(by_cluster) == ["c1", "c2"]
    assert len(by_cluster["c1"]) == 3 and len(by_cluster["c2"]) == 2, by_cluster
    assert sorted(direct(e) for e in learners_of(entries)) == [
        ("c1", "w1"), ("c1", "w2"), ("c2", "w3")
    ]  # fmt: skip
    assert stack.loopback_mentions(slas_before) == []
    assert_reads_only_local(stack)
    training = project["result"]["training"]
    client = MlflowClient(stack.api("GET", "/tracking").json()["tracking_url"])
    assert len(client.get_metric_history(training["mlflow_run_id"], "accuracy")) == 2
    stack.assert_nothing_left()


# Refusals ---------------------------------------------------------------------------------
def refusal(stack: BedStack, request: dict[str, Any]) -> str:
    """What the manager said refusing `request`: a 422 at once, or a project failed before it
    deployed anything; asserts that nothing reached Oakestra."""
    slas_before = len(stack.fake.received_slas)
    created = stack.api("POST", "/projects", json=request)
    if created.status_code == 422:
        message = json.dumps(created.json())
    else:
        assert created.status_code == 201, created.text
        project = stack.wait_state(created.json()["id"], FINAL)
        assert project["state"] == "failed", project
        assert all(s["undeployed_at"] for s in project["services"])
        message = project["message"]
    assert stack.fake.received_slas[slas_before:] == []
    assert stack.fake.services() == []
    return message


def test_a_project_whose_tags_no_node_holds_is_refused_before_deploying_anything(
    stack: BedStack, mock_job: dict[str, Any], repo_url: str
) -> None:
    message = refusal(stack, body(repo_url, data_tags=["nowhere"]))

    assert "nowhere" in message and "node" in message, message


def test_more_learners_than_nodes_holding_the_tags_is_refused_naming_how_many_do(
    stack: BedStack, mock_job: dict[str, Any], repo_url: str
) -> None:
    message = refusal(stack, body(repo_url, learners=4))

    assert "3" in message and "node" in message, message


def test_negative_scheduling_fails_the_project_and_undeploys_everything(
    stack: BedStack, mock_job: dict[str, Any], repo_url: str
) -> None:
    # Execute: no node has this much memory
    request = body(repo_url) | {"resource_constraints": {"memory": 900_000, "vcpus": 1}}
    created = stack.api("POST", "/projects", json=request)
    project = stack.wait_state(created.json()["id"], FINAL)

    # Assert
    assert project["state"] == "failed"
    assert "Capacity" in project["message"], project["message"]
    assert all(s["undeployed_at"] for s in project["services"])
    stack.assert_nothing_left()
