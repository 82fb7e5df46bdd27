"""Real processes for end-to-end tests: MLflow server, ML data server, aggregator, learners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flops_core.mlflow_server import MlflowServer, start_mlflow_server
from flops_core.mock_data import load_bundled_dataset, partition_iid
from flops_utils.ml_data_client import MLDataClient
from tests.conftest import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


@dataclass
class Proc:
    """A child process in its own process group, with its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class Processes:
    """Starts processes and guarantees they are all gone at the end of the test."""

    workdir: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
                cwd=self.workdir,
                start_new_session=True,
            )
        proc = Proc(name, process, log)
        self.started.append(proc)
        return proc

    def aggregator(self, project: str, repo: Path, port: int, *options: str) -> Proc:
        return self.start(
            "aggregator",
            "-m",
            "flops_aggregator",
            "--project-id",
            project,
            "--repo-dir",
            str(repo),
            "--address",
            f"127.0.0.1:{port}",
            *options,
        )

    def learner(
        self, name: str, repo: Path, port: int, data_server: str, tags: str, *options: str
    ) -> Proc:
        return self.start(
            name,
            "-m",
            "flops_learner",
            "--project-id",
            "test",
            "--name",
            name,
            "--repo-dir",
            str(repo),
            "--aggregator",
            f"127.0.0.1:{port}",
            "--data-server",
            data_server,
            "--data-tags",
            tags,
            *options,
        )

    def stop_all(self) -> None:
        for proc in self.started:
            proc.kill()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"), port=free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def data_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real data server holding digits in three partitions, tags `digits-0..2`."""
    with digits_data_server(tmp_path_factory.mktemp("data-server"), partitions=3) as address:
        yield address


@contextmanager
def digits_data_server(workdir: Path, *, partitions: int) -> Iterator[str]:
    """Run a real data server holding digits in `partitions` parts, tags `digits-<i>`."""
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flops_data_server",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(workdir / "data"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=ENV,
            start_new_session=True,
        )
    address = f"grpc://127.0.0.1:{port}"
    try:
        client = _connect_when_up(address, process, log)
        for i, part in enumerate(partition_iid(load_bundled_dataset("digits"), partitions, seed=1)):
            client.push_table(f"digits-{i}", part)
        client.close()
        yield address
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def _connect_when_up(address: str, process: subprocess.Popen[bytes], log: Path) -> MLDataClient:
    def connect() -> MLDataClient:
        client = MLDataClient(address)
        try:
            client.list_datasets([])
        except Exception:
            client.close()
            raise
        return client

    return eventually(
        connect, lambda: f"data server up at {address}:\n{log.read_text()}", 30,
        until=lambda _: True, interval=0.2, retry_on=(Exception,),
        give_up=lambda: None if process.poll() is None else "it exited",
    )  # fmt: skip
