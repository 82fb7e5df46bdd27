"""A real `python -m flops_manager` for end-to-end tests: start, talk to, wait on, stop."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, free_ports
from tests.flops_manager.api.conftest import (
    ADMIN_TOKEN,
    ManagerServer,
    kill_leftover_services,
    manager_env,
    start_manager,
    stop_process_group,
)

__all__ = ["FINAL", "ManagerProcess"]

#: The states a project does not leave.
FINAL = frozenset({"completed", "failed", "cancelled"})


class ManagerProcess:
    """A manager on free ports with its own data directory; killable and restartable.

    Parameters
    ----------
    workdir : Path
        Its working directory: `manager.log` and `data/` go there.
    settings : str
        FLOPS_* settings on top of the defaults (admin token, loopback, free ports, three
        local nodes, local repos allowed).
    """

    def __init__(self, workdir: Path, **settings: str) -> None:
        self.workdir = workdir
        defaults = {
            "FLOPS_ADMIN_TOKEN": ADMIN_TOKEN, "FLOPS_HOST": "127.0.0.1",
            "FLOPS_PORT": str(free_port()), "FLOPS_DATA_DIR": str(workdir / "data"),
            "FLOPS_MLFLOW_PORT": str(free_port()), "FLOPS_DATA_SERVER_PORT": str(free_ports(8)),
            "FLOPS_LOCAL_NODES": "3", "FLOPS_ALLOW_LOCAL_REPOS": "true",
        }  # fmt: skip
        self.env = manager_env(**{**defaults, **settings})
        self.url = f"http://127.0.0.1:{self.env['FLOPS_PORT']}"
        self.tracking_url = f"http://127.0.0.1:{self.env['FLOPS_MLFLOW_PORT']}"
        self.server: ManagerServer | None = None

    def start(self, timeout: float = 120) -> None:
        """Start the process and wait until it is healthy (`ready` says what that means)."""
        process, log = start_manager(self.workdir, self.env)
        self.server = ManagerServer(self.url, ADMIN_TOKEN, process, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"manager exited with {process.returncode}:\n{self.output()}")
            try:
                if self.ready(httpx.get(f"{self.url}/api/flops/health", timeout=5)):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"manager not healthy after {timeout} s:\n{self.output()}")

    def ready(self, health: httpx.Response) -> bool:
        """Whether the health answer means the tests can begin: a 200."""
        return health.status_code == 200

    def kill(self) -> None:
        """SIGKILL the manager's whole process group, as a crash would."""
        assert self.server is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(10)

    def stop(self) -> None:
        """Stop the manager and anything its services left behind."""
        if self.server is not None:
            stop_process_group(self.server.process)
        kill_leftover_services(self.workdir / "data" / "services")

    def output(self) -> str:
        """What the manager printed so far."""
        return self.server.output() if self.server is not None else ""

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to `/api/flops<path>`, as the admin unless `headers` say otherwise."""
        kwargs.setdefault("headers", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        return httpx.request(method, f"{self.url}/api/flops{path}", timeout=120, **kwargs)

    def data_server(self, node: int) -> str:
        """Address of the embedded default's learner node `node`'s data server."""
        return f"grpc://127.0.0.1:{int(self.env['FLOPS_DATA_SERVER_PORT']) + node}"

    def push_mock_data(self, partitions: int, dataset: str = "digits", tag: str = "") -> None:
        """Partition a bundled dataset onto the learner nodes under `tag` (default `dataset`)."""
        mock = {"dataset_name": dataset, "number_of_partitions": partitions,
                "data_tag": tag or dataset}  # fmt: skip
        response = self.api(
            "POST", "/mocks", json={"customerID": "Admin", "mock_data_configuration": mock}
        )
        assert response.status_code == 201, response.text

    def wait_state(
        self, project_id: str, states: set[str] | frozenset[str], timeout: float = 300
    ) -> dict[str, Any]:
        """The project once its state is one of `states`; fails the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        project: dict[str, Any] = {}
        while time.monotonic() < deadline:
            project = self.api("GET", f"/projects/{project_id}").json()
            if project["state"] in states:
                return project
            time.sleep(0.3)
        raise AssertionError(f"project {project_id} not in {states} after {timeout} s: {project}")

    def wait_event(self, project_id: str, kind: str, timeout: float = 240) -> None:
        """Return once the project has recorded an event of type `kind`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.api("GET", f"/projects/{project_id}/events").json()
            if any(e["type"] == kind for e in events):
                return
            time.sleep(0.2)
        raise AssertionError(f"no {kind} event in project {project_id} after {timeout} s")

    def run(self, body: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """Create a project and return it once it is final."""
        created = self.api("POST", "/projects", json=body)
        assert created.status_code == 201, created.text
        return self.wait_state(created.json()["id"], FINAL, timeout)
