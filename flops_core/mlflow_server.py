"""Start and stop a lean local MLflow tracking server (SQLite store, local artifacts)."""

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

__all__ = ["MlflowServer", "MlflowServerError", "start_mlflow_server"]

_log = get_logger("mlflow_server")


class MlflowServerError(FlopsError, RuntimeError):
    """Raised when the tracking server does not become healthy; carries its last output."""


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
    """Start `mlflow server` with one worker and no job execution; wait until it is healthy.

    DESIGN.md measured the defaults at 16 processes and 2.7 GB; these flags give about
    450 MB and 8 s to healthy. The store is `workdir/mlflow.db`, artifacts `workdir/artifacts`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "mlflow-server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = MlflowServer(process, f"http://{host}:{port}", log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                _log.info("mlflow server ready at %s", server.url)
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    tail = log_file.read_text(errors="replace").splitlines()[-15:]
    raise MlflowServerError(
        f"mlflow server on {host}:{port} did not become healthy within {timeout:g} s:\n"
        + "\n".join(tail)
    )
