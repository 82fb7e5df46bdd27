"""A real `python -m flops_manager` for tests and benchmarks: start, talk to, wait on, stop.

The one way tests (and `bench/`) start a manager process. It imports neither pytest nor a
conftest, so that the benchmarks can use it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from flops_core.vocabulary import FINAL_STATES
from tests.ports import free_port, free_ports
from tests.wait import eventually

__all__ = [
    "ADMIN_TOKEN",
    "FINAL",
    "ROOT",
    "ManagerProcess",
    "alive",
    "kill_leftover_services",
    "manager_env",
    "service_pids",
    "stop_process_group",
]

ROOT = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"

#: The states a project does not leave (the product's states that are not active).
FINAL = FINAL_STATES


def manager_env(**settings: str) -> dict[str, str]:
    """This process's environment without FLOPS_* variables, plus `settings` (FLOPS_ names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    # The package must import from any working directory, whatever the venv's editable map.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **settings}


def _reachable(bind_host: str) -> str:
    """Where this process reaches a server bound to `bind_host` (a wildcard: loopback)."""
    return "127.0.0.1" if bind_host in ("", "0.0.0.0", "::") else bind_host


class ManagerProcess:
    """A manager on free ports with its own data directory; killable and restartable.

    Parameters
    ----------
    workdir : Path
        Its working directory: `manager.log` and `data/` go there.
    settings : str
        Environment on top of `manager_env` and the defaults (admin token, loopback, free
        ports, three local nodes, local repos allowed): FLOPS_* settings, or any other
        variable (`PYTHONPATH` included). Delete a default from `env` before starting.
        `url` and `tracking_url` follow `FLOPS_HOST` and `FLOPS_MLFLOW_HOST` (e.g. a test
        bed's bridge address).
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
        self.admin_token = self.env["FLOPS_ADMIN_TOKEN"]
        host = _reachable(self.env["FLOPS_HOST"])
        mlflow_host = _reachable(self.env.get("FLOPS_MLFLOW_HOST", "127.0.0.1"))
        self.url = f"http://{host}:{self.env['FLOPS_PORT']}"
        self.tracking_url = f"http://{mlflow_host}:{self.env['FLOPS_MLFLOW_PORT']}"
        self.log = workdir / "manager.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process in its own process group, output to `log`; do not wait."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flops_manager"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,  # no stray .env file from the repo
                start_new_session=True,
            )
        return self.process

    def start(self, timeout: float = 120) -> None:
        """Start the process and wait until it is healthy (`ready` says what that means)."""
        process = self.launch()
        eventually(
            lambda: httpx.get(f"{self.url}/api/flops/health", timeout=5),
            lambda: f"manager healthy at {self.url}:\n{self.output()}",
            timeout,
            until=self.ready,
            interval=0.1,
            retry_on=(httpx.TransportError,),
            give_up=lambda: None if process.poll() is None else f"exited with {process.returncode}",
        )

    def ready(self, health: httpx.Response) -> bool:
        """Whether the health answer means the tests can begin: a 200."""
        return health.status_code == 200

    def wait(self, timeout: float) -> int:
        """The exit code of a process expected to end by itself within `timeout` s."""
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the manager's whole process group, as a crash would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the manager (SIGTERM, SIGKILL after `grace` s) and what its services left."""
        if self.process is not None:
            stop_process_group(self.process, grace)
        kill_leftover_services(Path(self.env["FLOPS_DATA_DIR"]) / "services")

    def output(self) -> str:
        """What the manager printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to `/api/flops<path>`, as the admin unless `headers` say otherwise."""
        kwargs.setdefault("headers", {"Authorization": f"Bearer {self.admin_token}"})
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
        self,
        project_id: str,
        states: set[str] | frozenset[str],
        timeout: float = 300,
        interval: float = 0.3,
    ) -> dict[str, Any]:
        """The project once its state is one of `states`; fails the test after `timeout` s."""
        project: dict[str, Any] = eventually(
            lambda: self.api("GET", f"/projects/{project_id}").json(),
            f"project {project_id} in one of the states {', '.join(sorted(states))}",
            timeout,
            until=lambda project: project["state"] in states,
            interval=interval,
        )
        return project

    def wait_event(self, project_id: str, kind: str, timeout: float = 240) -> None:
        """Return once the project has recorded an event of type `kind`."""
        eventually(
            lambda: any(
                e["type"] == kind for e in self.api("GET", f"/projects/{project_id}/events").json()
            ),
            f"a {kind} event in project {project_id}",
            timeout,
            interval=0.2,
        )

    def run(self, body: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """Create a project and return it once it is final."""
        created = self.api("POST", "/projects", json=body)
        assert created.status_code == 201, created.text
        return self.wait_state(created.json()["id"], FINAL, timeout)


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop the process and everything in its group: SIGTERM, then SIGKILL after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        process.wait(10)


def _records(state_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in state_dir.glob("*/service.json"):
        with contextlib.suppress(OSError, ValueError):
            records.append(json.loads(path.read_text()))
    return records


def service_pids(state_dir: Path) -> list[int]:
    """Process-group ids of the services the manager's local orchestrator recorded."""
    return [int(record["pgid"]) for record in _records(state_dir) if record.get("pgid")]


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot); None if there is no such process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pgid: int) -> bool:
    """Whether a process group still has a live (not zombie) member."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def kill_leftover_services(state_dir: Path) -> None:
    """A safety net for failing tests: no service process outlives its test.

    A group whose leader now is another process than the recorded one (its id was reused)
    is left alone.
    """
    for record in _records(state_dir):
        pgid, ticks = record.get("pgid"), record.get("start_ticks")
        if not pgid:
            continue
        now = _start_ticks(int(pgid))
        if ticks is not None and now is not None and now != ticks:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pgid), signal.SIGKILL)
