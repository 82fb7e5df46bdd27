"""A manager run as a child process of the CLI (for `flops demo`): ports, start, health, stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flops_cli.client import ManagerClient, ManagerError
from flops_core.errors import FlopsError

__all__ = ["DemoError", "ManagerProcess", "StackPorts", "choose_ports", "free_port_block"]


class DemoError(FlopsError, RuntimeError):
    """Raised when the demo cannot go on; the message says what failed and why."""


@dataclass(frozen=True)
class StackPorts:
    """Ports of the embedded stack: data servers use `data_server`, `data_server + 1`, ..."""

    manager: int
    mlflow: int
    data_server: int


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int, *, low: int = 20000, high: int = 32000, tries: int = 200) -> int:
    """Return the first of `size` consecutive ports that nothing listens on now.

    The ports lie below Linux's ephemeral range (32768-60999), so that outgoing connections
    do not take them between this check and the servers' start.

    Parameters
    ----------
    size : int
        How many consecutive ports.
    low, high : int
        The range to search.
    tries : int
        Random starting points to try before giving up.
    """
    for _ in range(tries):
        first = random.randrange(low, high - size)
        if all(_bindable(port) for port in range(first, first + size)):
            return first
    raise DemoError(f"found no {size} consecutive free ports between {low} and {high}")


def choose_ports(nodes: int) -> StackPorts:
    """Free ports for the manager, MLflow and `nodes` (at least 8) data servers, in one block."""
    first = free_port_block(2 + max(nodes, 8))
    return StackPorts(manager=first, mlflow=first + 1, data_server=first + 2)


class ManagerProcess:
    """`python -m flops_manager` as a child in its own process group, logging to a file.

    The admin token goes to the child in its environment, never on its command line (where
    any user of the machine could read it).

    Parameters
    ----------
    data_dir : Path
        The manager's data directory; also its working directory and where `manager.log` goes.
    ports : StackPorts
        Where the manager, MLflow and the data servers listen.
    token : str
        The admin token.
    nodes : int
        Learner nodes (one data server each) the manager simulates.
    base_env : Mapping[str, str] | None
        The environment to start from (default `os.environ`); its `FLOPS_*` variables are
        dropped so that the user's own manager settings cannot leak into the demo.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        ports: StackPorts,
        token: str,
        nodes: int = 3,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.nodes = nodes
        self.log_path = data_dir / "manager.log"
        self._token = token
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The manager's base URL."""
        return f"http://127.0.0.1:{self.ports.manager}"

    def environment(self) -> dict[str, str]:
        """The child's environment."""
        env = {k: v for k, v in self._base_env.items() if not k.startswith("FLOPS_")}
        env.update(
            PYTHONUNBUFFERED="1",
            FLOPS_ADMIN_TOKEN=self._token,
            FLOPS_HOST="127.0.0.1",
            FLOPS_PORT=str(self.ports.manager),
            FLOPS_MLFLOW_PORT=str(self.ports.mlflow),
            FLOPS_DATA_SERVER_PORT=str(self.ports.data_server),
            FLOPS_LOCAL_NODES=str(self.nodes),
            FLOPS_DATA_DIR=str(self.data_dir),
            FLOPS_ALLOW_LOCAL_REPOS="true",
        )
        return env

    def start(self) -> None:
        """Start the manager; its output goes to `log_path`."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "flops_manager"],
                cwd=self.data_dir,  # not the user's: a `.env` there would configure it
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(
        self,
        client: ManagerClient,
        *,
        timeout: float = 180.0,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """Wait until the manager reports itself healthy and accepts our token.

        Parameters
        ----------
        client : ManagerClient
            A client of this manager with the admin token.
        timeout : float
            Seconds before giving up.
        on_status : Callable[[str], None] | None
            Called with a short description of what is awaited, as it changes.

        Raises
        ------
        DemoError
            If the manager exits, stays unhealthy, or is not the one started here.
        """
        deadline = time.monotonic() + timeout
        waiting = "the manager to answer"
        while True:
            code = self._process.poll() if self._process is not None else -1
            if code is not None:
                raise DemoError(f"the manager exited with status {code}: {self.log_tail(3)}")
            try:
                health = client.health()
            except ManagerError:
                health = None
            if health is not None and health["status"] == "ok":
                break
            if health is not None:
                down = {k: v for k, v in health.get("components", {}).items() if v != "ok"}
                if health.get("database", "ok") != "ok":
                    down["database"] = str(health.get("database"))
                waiting = "; ".join(f"{k}: {v}" for k, v in down.items()) or "health ok"
            if on_status is not None:
                on_status(waiting)
            if time.monotonic() > deadline:
                raise DemoError(f"the manager was not healthy after {timeout:.0f} s ({waiting})")
            time.sleep(0.3)
        try:
            client.whoami()
        except ManagerError as e:
            raise DemoError(f"port {self.ports.manager} answers, but not as this demo: {e}") from e

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the manager's process group, wait up to `timeout`, then SIGKILL."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)

    @property
    def running(self) -> bool:
        """Whether the manager process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the manager's log, joined with " | "."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text.splitlines()[-lines:]) or "(empty log)"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
