"""A manager killed or stopped, then started again on the same data directory and ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually
from tests.flops_manager.api.conftest import alive
from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e

_LISTEN = "0A"


def body(repo_url: str, rounds: int) -> dict[str, Any]:
    return {
        "customerID": "Admin", "ml_repo_url": repo_url, "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": rounds, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3,
        },
    }  # fmt: skip


def _cmdlines() -> Iterator[tuple[int, list[str]]]:
    """Pid and argv of every process that runs (no zombies)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            raw = (entry / "cmdline").read_bytes()
            yield int(entry.name), raw.decode(errors="replace").split("\0")


def stack_processes(data_dir: Path) -> dict[str, list[int]]:
    """Pids of the MLflow servers and data servers started for `data_dir`, by service."""
    found: dict[str, list[int]] = {}
    for pid, argv in _cmdlines():
        joined = " ".join(argv)
        if str(data_dir) not in joined:
            continue
        if "mlflow" in argv and "server" in argv:
            found.setdefault("mlflow", []).append(pid)
        elif "flops_data_server" in argv and "serve" in argv:
            node = Path(argv[argv.index("--data-dir") + 1]).parent.name
            found.setdefault(node, []).append(pid)
    return found


def listening_groups(port: int) -> set[int]:
    """Process groups of the processes listening on 127.0.0.1:`port` (or any address)."""
    inodes = set()
    for table in ("tcp", "tcp6"):  # gRPC's sockets are IPv6 ones, bound to ::ffff:127.0.0.1
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    groups = set()
    for pid, _ in _cmdlines():
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                groups.add(os.getpgid(pid))
    return groups


def system_records(data_dir: Path) -> list[dict[str, Any]]:
    """The local orchestrator's records of the shared services (MLflow, data servers)."""
    records = [json.loads(p.read_text()) for p in (data_dir / "services").glob("*/service.json")]
    return [r for r in records if r["project_id"] == "system"]


def project_pgids(manager: ManagerProcess, project_id: str) -> list[int]:
    services = manager.api("GET", f"/projects/{project_id}").json()["services"]
    state_dir = manager.workdir / "data" / "services"
    records = [state_dir / s["service_id"] / "service.json" for s in services]
    return [json.loads(r.read_text())["pgid"] for r in records if r.exists()]


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ManagerProcess]:
    made = ManagerProcess(tmp_path)
    try:
        yield made
    finally:
        made.stop()
        for pids in stack_processes(tmp_path / "data").values():  # whatever survived
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def test_a_killed_manager_comes_back_with_one_stack_and_leaves_nothing(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare: the stack is up, with data on it, and a project trains when the manager dies
    data_dir = manager.workdir / "data"
    manager.start()
    manager.push_mock_data(partitions=3)
    project_id = manager.api("POST", "/projects", json=body(repo_url, 5000)).json()["id"]
    manager.wait_event(project_id, "round_completed")
    pgids = project_pgids(manager, project_id)
    old = stack_processes(data_dir)
    assert sorted(old) == ["mlflow", "node0", "node1", "node2"] and all(
        len(pids) == 1 for pids in old.values()
    ), old

    # Execute: SIGKILL (its services survive it), then a manager on the same dir and ports
    manager.kill()
    assert all(alive(pids[0]) for pids in old.values())
    manager.start()
    done = manager.run(body(repo_url, 2))

    # Assert: the old stack and the project's services are gone, one new stack serves
    assert done["state"] == "completed", done["message"]
    assert manager.api("GET", "/health").status_code == 200
    interrupted = manager.api("GET", f"/projects/{project_id}").json()
    assert interrupted["state"] == "failed" and "manager restarted" in interrupted["message"]
    eventually(lambda: not any(alive(p) for p in pgids), "the killed manager's project stopped")
    assert not [pids[0] for pids in old.values() if alive(pids[0])]
    new = stack_processes(data_dir)
    assert sorted(new) == sorted(old) and all(len(pids) == 1 for pids in new.values()), new
    env = manager.env
    ports = [int(env["FLOPS_MLFLOW_PORT"])] + [
        int(env["FLOPS_DATA_SERVER_PORT"]) + node for node in range(3)
    ]
    assert [len(listening_groups(port)) for port in ports] == [1, 1, 1, 1]
    running = [r for r in system_records(data_dir) if r["status"] == "running"]
    assert len(running) == 4 and all(r["restarts"] == 0 for r in running), running
    assert not [r for r in system_records(data_dir) if r["status"] == "failed"]

    # Execute: the final stop
    assert manager.process is not None
    os.killpg(manager.process.pid, signal.SIGTERM)
    manager.process.wait(60)

    # Assert: no stack process is left
    assert stack_processes(data_dir) == {}
