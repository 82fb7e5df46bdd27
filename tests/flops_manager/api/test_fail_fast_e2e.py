"""A real manager fails fast, naming the part that failed: learners gone, a frozen data server."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.flops_manager.api.conftest import alive
from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT_S = 300


def _body(repo_url: str, data_tags: list[str]) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": data_tags, "training_rounds": 2, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3,
            "connect_timeout_s": CONNECT_TIMEOUT_S,
        },
    }  # fmt: skip


def _pgid_of(manager: ManagerProcess, name: str) -> int:
    """The process group of the manager's shared service `name` (e.g. `dataserver1`)."""
    for record in (manager.workdir / "data" / "services").glob("*/service.json"):
        fields = json.loads(record.read_text())
        if fields["name"] == name and fields.get("pgid") and alive(int(fields["pgid"])):
            return int(fields["pgid"])
    raise AssertionError(f"no running {name} in {manager.workdir}")


@contextmanager
def _frozen(pgid: int) -> Iterator[None]:
    """SIGSTOP a process group for the block; SIGCONT whatever happens."""
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


def test_learners_that_all_fail_end_the_project_long_before_the_connect_timeout(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare: data tags nobody has, so every learner exits at once; the aggregator would
    # wait CONNECT_TIMEOUT_S for them
    body = _body(repo_url, ["nobody-has-this"])

    # Execute: the project must be final well before the aggregator's connect timeout
    project = manager.run(body, timeout=CONNECT_TIMEOUT_S / 2)

    # Assert: failed, saying that the learners are gone and why each went
    assert project["state"] == "failed", project
    message = project["message"]
    assert message.startswith("training failed: all 3 learners exited before training ended"), (
        message
    )
    for learner in ("learner0", "learner1", "learner2"):
        assert f"{learner}: no training data: no data for data tags ['Admin:nobody-has-this']" in (
            message
        ), message
    assert all(s["undeployed_at"] for s in project["services"])


def test_a_frozen_data_server_is_named_by_mock_pushes_and_projects(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare: node 1's data server stops answering (its process is stopped, not gone)
    address = f"grpc://127.0.0.1:{int(manager.env['FLOPS_DATA_SERVER_PORT']) + 1}"
    named = f"the data server of node1 at {address} did not answer within 10 s"
    mock = {"dataset_name": "digits", "number_of_partitions": 3, "data_tag": "digits"}

    with _frozen(_pgid_of(manager, "dataserver1")):
        # Execute
        pushed = manager.api(
            "POST", "/mocks", json={"customerID": "Admin", "mock_data_configuration": mock}
        )
        project = manager.run(_body(repo_url, ["digits"]), timeout=120)

    # Assert: both end naming the data server and its address, never "internal error"
    assert pushed.status_code == 503, pushed.text
    assert named in pushed.json()["detail"], pushed.text
    assert project["state"] == "failed", project
    assert named in project["message"], project["message"]
    assert "internal error" not in project["message"]
