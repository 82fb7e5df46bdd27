"""The manager's runtime and the node registry: simulated nodes only where learners stay local."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.lifecycle.runtime import ManagerRuntime, simulated_node_tokens
from flops_manager.services import nodes
from flops_manager.services.nodes import NodeReport

ADMIN_TOKEN = "runtime-admin-token-0123456789"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    yield made
    made.close()


def register(database: Database, name: str, token: str) -> None:
    report = NodeReport(cluster="local", platform="linux/amd64", address="127.0.0.1", port=11027)
    with database.session() as session:
        nodes.record_report(session=session, token=token, name=name, report=report)


@pytest.mark.parametrize(
    ("backend", "expected"), [("oakestra", ["w1"]), ("local", ["node0", "w1"])]
)
def test_learners_on_registered_nodes_forget_the_simulated_nodes_of_an_earlier_start(
    tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch, backend: str,
    expected: list[str],
) -> None:  # fmt: skip
    # Prepare: node0 of an earlier embedded default, and w1 with a token the admin issued
    register(database, "node0", simulated_node_tokens(database, ["node0"])["node0"])
    with database.session() as session:
        issued = nodes.create_node_token(session=session, node="w1").token
    register(database, "w1", issued)
    settings = Settings(
        admin_token=ADMIN_TOKEN, orchestrator=backend, data_dir=tmp_path, _env_file=None,
        oakestra_url="http://127.0.0.1:9", oakestra_username="flops",
        oakestra_password="oak-password-0123",
    )  # fmt: skip
    monkeypatch.setattr(ManagerRuntime, "_start_stack", lambda self: None)  # no MLflow here

    # Execute
    runtime = ManagerRuntime.start(settings, database)
    try:
        listed = [node.name for node in runtime.lifecycle.context.registered_nodes()]
        simulated = runtime.stack.nodes
    finally:
        runtime.stop()

    # Assert
    assert listed == expected
    assert simulated == (0 if backend == "oakestra" else settings.local_nodes)
