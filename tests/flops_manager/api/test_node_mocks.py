"""Mock data where learners run on registered nodes: partition i to the i-th fresh node.

The nodes are `RegisteredNode`s whose data servers are real `MLDataServer`s on
free loopback ports; the app uses them through `NodeDataServers`, as it does on `oakestra`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_data_server import MLDataServer
from flops_manager.api.routes.mocks import get_data_servers
from flops_manager.orchestrators import Capabilities
from flops_manager.services.node_data_servers import NodeDataServers
from flops_manager.services.nodes import RegisteredNode
from flops_utils.ml_data_client import MLDataClient
from tests.flops_manager.lifecycle.registered_nodes import registered_node

MOCKS = "/api/flops/mocks"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[MLDataServer]]:
    started = [MLDataServer(tmp_path / f"w{i}", host="127.0.0.1", port=0) for i in range(2)]
    yield started
    for server in started:
        server.shutdown()


def use_nodes(app: FastAPI, nodes: list[RegisteredNode]) -> None:
    app.dependency_overrides[get_data_servers] = lambda: NodeDataServers(lambda: list(nodes))


def use_live_nodes(app: FastAPI, nodes: list[tuple[RegisteredNode, MLDataServer | None]]) -> None:
    """Nodes whose reports always show what their data server holds now."""

    def listed() -> list[RegisteredNode]:
        return [replace(n, tags=s.stored_tags()) if s else n for n, s in nodes]

    app.dependency_overrides[get_data_servers] = lambda: NodeDataServers(listed)


def body(partitions: int) -> dict[str, Any]:
    config = {"dataset_name": "iris", "number_of_partitions": partitions, "data_tag": "t"}
    return {"customerID": "Admin", "mock_data_configuration": config}


def test_partition_i_goes_to_the_ith_fresh_node_by_name_and_its_events_name_it(
    app: FastAPI, client: TestClient, admin: dict[str, str], servers: list[MLDataServer]
) -> None:
    # Prepare: w1 and w2 answer and report what they hold; w0 is stale (nobody listens there)
    w1, w2 = (registered_node(f"w{i + 1}", address="127.0.0.1", port=s.port, tags={})
              for i, s in enumerate(servers))  # fmt: skip
    w0 = registered_node("w0", address="127.0.0.1", port=9, stale=True)
    use_live_nodes(app, [(w2, servers[1]), (w0, None), (w1, servers[0])])

    # Execute
    created = client.post(MOCKS, headers=admin, json=body(partitions=3))

    # Assert
    assert created.status_code == 201, created.text
    job = client.get(created.json()["url"], headers=admin).json()
    pushed = [e["data"] for e in job["events"] if e["type"] == "partition_pushed"]
    assert [(p["partition"], p["node"]) for p in pushed] == [(0, "w1"), (1, "w2"), (2, "w1")]
    assert [p["data_server"] for p in pushed] == [w1.data_server_url, w2.data_server_url,
                                                   w1.data_server_url]  # fmt: skip
    assert "partition 1: 50 rows to node w2" in [e["message"] for e in job["events"]]
    held = []
    for server in servers:
        with MLDataClient(f"grpc://127.0.0.1:{server.port}") as data:
            held.append(sum(i.rows for i in data.list_datasets(["Admin:t"])))
    assert held == [100, 50]


def test_with_no_fresh_node_the_job_fails_saying_what_to_start(
    app: FastAPI, client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    use_nodes(app, [registered_node("w0", address="127.0.0.1", port=9, stale=True)])

    # Execute
    response = client.post(MOCKS, headers=admin, json=body(partitions=2))

    # Assert
    assert response.status_code == 503, response.text
    message = response.json()["message"]
    assert message.startswith("failed: no learner node is registered")
    assert "start flops-data-server on the workers" in message and "README" in message


def runtime_of(capabilities: Capabilities) -> Any:
    context = SimpleNamespace(
        orchestrator=SimpleNamespace(capabilities=capabilities), registered_nodes=lambda: []
    )
    return SimpleNamespace(lifecycle=SimpleNamespace(context=context), stack="the stack")


def test_the_registered_nodes_take_mock_data_only_where_learners_run_on_them() -> None:
    local_runtime = runtime_of(Capabilities())
    on_nodes = asyncio.run(get_data_servers(runtime_of(Capabilities(places_on_nodes=True))))
    local = asyncio.run(get_data_servers(local_runtime))
    assert isinstance(on_nodes, NodeDataServers) and local is local_runtime.stack


def test_a_job_ends_once_the_nodes_have_reported_the_pushed_tag() -> None:
    # Prepare: w1 reports the tag at its third listing, w2 never does
    listings = itertools.count()

    def listed() -> list[RegisteredNode]:
        seen = next(listings) >= 2
        return [registered_node("w1", tags={"Admin:t": 5} if seen else {}),
                registered_node("w2", tags={})]  # fmt: skip

    servers = NodeDataServers(listed)

    # Execute
    waited_for_w1 = servers.await_reports("Admin:t", ["w1"], timeout=5)
    late = servers.await_reports("Admin:t", ["w1", "w2"], timeout=0.5)

    # Assert: it waited for w1's report; w2, which never reported, is named after the timeout
    assert waited_for_w1 == [] and next(listings) > 3
    assert late == ["w2"]
