"""The one lean local MLflow tracking server (SQLite store, local artifacts): how it is started
and how it is known to answer.

`mlflow_server_launch` builds the command line and environment of the server for a store
folder and a port, and `check_mlflow` is its readiness probe. The manager's embedded stack
runs that launch as a service supervised by its orchestrator; tests and benchmarks run it as
a child process they own with `start_mlflow_server`. Both therefore start the same server:
DESIGN.md measured MLflow's defaults at 16 processes and 2.7 GB; one worker and no job
execution give about 450 MB and 8 s to healthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from flops_core.errors import FlopsError
from flops_core.logs import get_logger

__all__ = [
    "PROBE_S",
    "MlflowLaunch",
    "MlflowServer",
    "MlflowServerError",
    "check_mlflow",
    "mlflow_server_launch",
    "start_mlflow_server",
]

#: Seconds one health probe may take.
PROBE_S = 2.0

_log = get_logger("mlflow_server")


class MlflowServerError(FlopsError, RuntimeError):
    """Raised when the tracking server does not become healthy; carries its last output."""


@dataclass(frozen=True)
class MlflowLaunch:
    """How to start the tracking server: its command, the variables it needs, its address.

    `env` holds only what is added to the caller's environment.
    """

    command: tuple[str, ...]
    env: dict[str, str]
    url: str


def mlflow_server_launch(
    store: Path, *, port: int, host: str = "127.0.0.1", python: str = sys.executable
) -> MlflowLaunch:
    """The launch of `mlflow server` with one worker and no job execution.

    Parameters
    ----------
    store : Path
        The backend store is `store/mlflow.db` (SQLite), artifacts go to `store/artifacts`.
    port : int
        Port to listen on.
    host : str
        Address to listen on; the URL names it too.
    python : str
        The interpreter that has MLflow installed.
    """
    command = (
        python,
        *("-m", "mlflow", "server"),
        *("--host", host, "--port", str(port)),
        *("--workers", "1"),
        *("--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"),
        *("--artifacts-destination", str(store / "artifacts")),
    )
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return MlflowLaunch(command, env, f"http://{host}:{port}")


def check_mlflow(url: str, *, timeout: float = PROBE_S) -> tuple[bool, str]:
    """Whether MLflow at `url` answers its health check, and that in words (safe to show).

    Parameters
    ----------
    url : str
        The tracking server's base URL.
    timeout : float
        Seconds the probe may take.
    """
    try:
        ok = httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError as e:
        return False, f"MLflow at {url} is not answering ({type(e).__name__})"
    return ok, f"MLflow at {url}" + ("" if ok else " is unhealthy")


@dataclass
class MlflowServer:
    """A running `mlflow server` child process."""

    process: subprocess.Popen[bytes]
    url: str
    log_file: Path

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and every process it started."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)


def start_mlflow_server(
    workdir: Path, *, host: str = "127.0.0.1", port: int = 5000, timeout: float = 90.0
) -> MlflowServer:
    """Start the server of `mlflow_server_launch` as a child process; wait until it is healthy.

    The store is `workdir` (`mlflow.db`, `artifacts/`), the server's output goes to
    `workdir/mlflow-server.log`.

    Raises
    ------
    MlflowServerError
        When the server exits or does not answer within `timeout` seconds (with its output).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "mlflow-server.log"
    launch = mlflow_server_launch(workdir, port=port, host=host)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            launch.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **launch.env},
            start_new_session=True,
        )
    server = MlflowServer(process, launch.url, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if check_mlflow(server.url)[0]:
            _log.info("mlflow server ready at %s", server.url)
            return server
        time.sleep(0.3)
    server.stop()
    tail = log_file.read_text(errors="replace").splitlines()[-15:]
    raise MlflowServerError(
        f"mlflow server on {host}:{port} did not become healthy within {timeout:g} s:\n"
        + "\n".join(tail)
    )
