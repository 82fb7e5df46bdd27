"""Helpers the benchmarks share: child processes, free ports, an event receiver, demo data.

Waiting for a condition and starting a manager are the tests' helpers (`tests.wait`,
`tests.flops_manager.api.manager_process`); `_repo` puts the repository root on `sys.path`
for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import _repo

from flops_core.mock_data import load_bundled_dataset, partition_iid
from flops_utils.ml_data_client import MLDataClient
from tests.wait import WaitFailed, eventually

ROOT = _repo.ROOT
VENV_BIN = Path(sys.executable).parent


# Native compute thread pools, limited by `child_env(native_threads=...)`.
_NATIVE_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def child_env(native_threads: int) -> dict[str, str]:
    """Environment of every child process.

    Loopback only (no Flower telemetry or update check), unbuffered output, the venv's
    scripts on PATH (Flower starts `flower-superexec` by name), and `native_threads` threads
    for OpenBLAS/OpenMP/MKL (0 keeps the libraries' defaults).
    """
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if native_threads > 0:
        env.update(dict.fromkeys(_NATIVE_THREADS, str(native_threads)))
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(proc: Proc, port: int, timeout: float = 60.0) -> None:
    """Wait until `proc` accepts TCP connections on 127.0.0.1:`port`."""
    eventually(
        lambda: _accepts(port), f"{proc.name} listening on {port}", timeout, interval=0.05,
        give_up=lambda: None if proc.running else f"it exited:\n{proc.tail()}",
    )  # fmt: skip


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def median(values: Sequence[float]) -> float:
    """Median of `values`; NaN when there are none."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Proc:
    """A child process in its own session (process group), its output in `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float) -> int:
        """Wait for the exit code; raise `RuntimeError` (with the log's tail) on timeout."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(
                f"{self.name} still running after {timeout:g} s:\n{self.tail()}"
            ) from e

    @property
    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        """The last lines of the process' output."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Processes:
    """Starts children with environment `env` and makes sure they and their children end."""

    workdir: Path
    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], **env: str) -> Proc:
        """Start `argv` in a new session, with `env` added, output in `workdir/<name>.log`."""
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **env},
                cwd=self.workdir,
                start_new_session=True,
            )
        proc = Proc(name, process, log)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        """SIGTERM every child's process group and descendants, then SIGKILL what is left.

        Flower's SuperLink starts its SuperExec in a session of its own, so killing process
        groups alone would miss it: descendants are looked up by parent id as well.
        """
        live = [p for p in self.started if p.process.poll() is None]
        pids = {pid for p in live for pid in (p.process.pid, *_descendants(p.process.pid))}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in live:
                _signal(proc.process.pid, sig, group=True)
            for pid in pids:
                _signal(pid, sig, group=False)
            with contextlib.suppress(WaitFailed):  # then SIGKILL, or leave what is left
                eventually(
                    lambda: not any(p.running for p in live), "the children ended", 5,
                    interval=0.1,
                )  # fmt: skip
        self.started.clear()


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(root: int) -> list[int]:
    """Process ids below `root`, found through the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_data_server(procs: Processes, partitions: int) -> str:
    """Start an ML data server holding digits in `partitions` parts, tags `digits-<i>`.

    Returns its address (`grpc://127.0.0.1:<port>`).
    """
    port = free_port()
    proc = procs.start(
        "data-server",
        [sys.executable, "-m", "flops_data_server", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(procs.workdir / "ml-data")],
    )  # fmt: skip
    address = f"grpc://127.0.0.1:{port}"
    eventually(
        lambda: _serving(address), f"the data server answering at {address}", 30,
        interval=0.2, retry_on=(Exception,),
        give_up=lambda: None if proc.running else f"it exited:\n{proc.tail()}",
    )  # fmt: skip
    with MLDataClient(address, timeout=2.0) as client:
        parts = partition_iid(load_bundled_dataset("digits"), partitions, seed=1)
        for i, part in enumerate(parts):
            client.push_table(f"digits-{i}", part)
    return address


def _serving(address: str) -> bool:
    with MLDataClient(address, timeout=2.0) as client:
        client.list_datasets([])
    return True
