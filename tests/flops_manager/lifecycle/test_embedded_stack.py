"""The embedded stack: its simulated nodes register with the manager like real workers, MLflow
binds the host it is told, and a port held on that host is named before anything starts."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from flops_manager.lifecycle.embedded_stack import EmbeddedStack, StackError
from flops_manager.orchestrators import LocalOrchestrator
from flops_manager.orchestrators.local_process import passthrough_environment
from tests.conftest import eventually, free_port, free_ports
from tests.flops_data_server.node_receiver import NodeReceiver

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[LocalOrchestrator]:
    """A local orchestrator whose services run this checkout's code (not an installed one)."""
    base_env = {**passthrough_environment(os.environ), "PYTHONPATH": str(ROOT)}
    made = LocalOrchestrator(tmp_path / "services", base_env=base_env)
    yield made
    made.close()


@pytest.fixture
def receiver() -> Iterator[NodeReceiver]:
    made = NodeReceiver()
    yield made
    made.close()


@pytest.mark.parametrize(
    ("mlflow_host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:5000"),
        ("0.0.0.0", "http://127.0.0.1:5000"),
        ("10.20.0.1", "http://10.20.0.1:5000"),
        ("::", "http://[::1]:5000"),
        ("fd00::1", "http://[fd00::1]:5000"),
    ],
)
def test_the_tracking_url_names_the_host_mlflow_binds(
    orchestrator: LocalOrchestrator, tmp_path: Path, mlflow_host: str, url: str
) -> None:
    stack = EmbeddedStack(
        orchestrator=orchestrator, data_dir=tmp_path, mlflow_port=5000, data_server_port=1,
        nodes=0, mlflow_host=mlflow_host,
    )  # fmt: skip

    assert stack.tracking_url == url


def test_mlflow_s_port_is_checked_on_the_host_it_binds(
    orchestrator: LocalOrchestrator, tmp_path: Path
) -> None:
    # Prepare: another program holds the port on 127.0.0.2 only (127.0.0.1 is free)
    with socket.socket() as other:
        other.bind(("127.0.0.2", 0))
        other.listen()
        port = other.getsockname()[1]
        stack = EmbeddedStack(
            orchestrator=orchestrator, data_dir=tmp_path, mlflow_port=port, data_server_port=1,
            nodes=0, mlflow_host="127.0.0.2",
        )  # fmt: skip

        # Execute
        with pytest.raises(StackError) as failed:
            stack.ensure_started()

    # Assert
    assert f"MLflow cannot listen on 127.0.0.2:{port}" in str(failed.value)
    assert "FLOPS_MLFLOW_PORT" in str(failed.value)
    assert orchestrator.list_services(project_id="system") == []


def test_without_nodes_there_is_no_data_server_to_name(
    orchestrator: LocalOrchestrator, tmp_path: Path
) -> None:
    stack = EmbeddedStack(
        orchestrator=orchestrator, data_dir=tmp_path, mlflow_port=1, data_server_port=2, nodes=0
    )

    with pytest.raises(ValueError, match="simulates no learner nodes"):
        stack.data_server(0)


@pytest.mark.e2e
def test_the_simulated_nodes_register_with_their_own_tokens(
    orchestrator: LocalOrchestrator, tmp_path: Path, receiver: NodeReceiver
) -> None:
    # Prepare: MLflow is elsewhere, so only the two data servers start
    asked: list[list[str]] = []

    def node_tokens(names: Sequence[str]) -> Mapping[str, str]:
        asked.append(list(names))
        return {name: f"flops_node_secret_{name}" for name in names}

    first_port = free_ports(2)
    stack = EmbeddedStack(
        orchestrator=orchestrator, data_dir=tmp_path / "manager", mlflow_port=free_port(),
        data_server_port=first_port, nodes=2, tracking_uri="http://127.0.0.1:9",
        manager_url=receiver.url, node_tokens=node_tokens,
    )  # fmt: skip
    try:
        # Execute
        stack.ensure_started()
        reports = eventually(
            lambda: {r.node: r for r in receiver.received()},
            "reports of node0 and node1",
            30,
            until=lambda got: set(got) == {"node0", "node1"},
        )
        services = orchestrator.list_services(project_id="system")
        argv = [Path(f"/proc/{s.pids[0]}/cmdline").read_bytes().decode() for s in services]
    finally:
        stack.stop()

    # Assert
    assert asked == [["node0", "node1"]]
    for i in range(2):
        report = reports[f"node{i}"]
        assert report.authorization == f"Bearer flops_node_secret_node{i}"
        assert report.body["cluster"] == "local"
        assert (report.body["address"], report.body["port"]) == ("127.0.0.1", first_port + i)
    assert len(argv) == 2 and not any("flops_node_secret" in a for a in argv)
