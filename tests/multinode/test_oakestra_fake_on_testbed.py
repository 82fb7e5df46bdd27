"""The fake Oakestra root with nodes on the test bed: each instance runs inside the network
namespace of the node it was placed on and reports that node's address as `publicip`."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.oakestra import FakeOakestra
from tests.fakes.test_oakestra_fake import deploy, login, service, wait_for
from tests.multinode.stack import bed_clusters
from tests.multinode.testbed import TestBed
from tests.wait import eventually

pytestmark = pytest.mark.multinode

_SERVE_OWN_ADDRESS = """
import socket
server = socket.create_server(("0.0.0.0", 8080))
while True:
    connection, _ = server.accept()
    connection.sendall(connection.getsockname()[0].encode())
    connection.close()
"""


@pytest.fixture(scope="module")
def fake(bed: TestBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOakestra]:
    state_dir = tmp_path_factory.mktemp("oakestra")
    with FakeOakestra(
        users={"alice": "alice-pw"}, clusters=bed_clusters(bed), state_dir=state_dir,
        step_delay_s=0.02,
    ) as started:  # fmt: skip
        yield started


def read(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5) as connection:
        return connection.recv(100).decode()


def test_an_instance_runs_in_its_nodes_namespace_and_reports_the_nodes_address(
    bed: TestBed, fake: FakeOakestra, tmp_path: Path
) -> None:
    # Prepare: a server pinned to node w2 of cluster c1
    w2 = bed.node("w2")
    direct = [{"type": "direct", "cluster": "c1", "node": "w2"}]
    cmd = [sys.executable, "-c", _SERVE_OWN_ADDRESS]
    with httpx.Client(base_url=fake.url, timeout=10.0) as client:
        headers = login(client)

        # Execute
        sid = deploy(client, headers, service("echo", cmd=cmd, constraints=direct, port="8080"))
        document = wait_for(client, headers, sid, {"RUNNING", "FAILED", "DEAD"})

    # Assert: where Oakestra says it is, it is; it answers there, from w2's address
    [instance] = document["instance_list"]
    assert document["status"] == "RUNNING", instance.get("logs")
    assert instance["publicip"] == instance["host_ip"] == w2.address
    [running] = [i for i in fake.running_instances() if i.service_id == sid]
    assert (running.cluster, running.node) == ("c1", "w2")
    assert running.pid in bed.pids("w2")
    answer = eventually(
        lambda: read(instance["publicip"], 8080), "an answer on port 8080 of w2", 10,
        retry_on=(OSError,),
    )  # fmt: skip
    assert answer == w2.address


def test_an_inactive_node_gets_no_instance(bed: TestBed, fake: FakeOakestra) -> None:
    # Prepare
    fake.set_node_active("w3", False)
    direct = [{"type": "direct", "cluster": "c2", "node": "w3"}]
    try:
        with httpx.Client(base_url=fake.url, timeout=10.0) as client:
            headers = login(client)

            # Execute
            sid = deploy(client, headers, service("late", cmd=["true"], constraints=direct))
            document = wait_for(client, headers, sid, {"TargetClusterNoCapacity", "RUNNING"})
    finally:
        fake.set_node_active("w3", True)

    # Assert: w3 is c2's only node
    assert document["status"] == "TargetClusterNoCapacity" and document["instance_list"] == []
