"""Fixtures for the manager's API: an in-process app with a test client, and the real server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.main import create_app
from tests.conftest import free_port

if TYPE_CHECKING:  # manager_process imports this module
    from tests.flops_manager.api.manager_process import ManagerProcess

ROOT = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    yield db
    db.close()


@pytest.fixture
def app(tmp_path: Path, database: Database) -> FastAPI:
    settings = Settings(admin_token=ADMIN_TOKEN, data_dir=tmp_path, _env_file=None)
    return create_app(settings, database=database, start_projects=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that authenticate as the configured admin."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def manager_env(**settings: str) -> dict[str, str]:
    """This process's environment without FLOPS_* variables, plus `settings` (FLOPS_ names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    # The package must import from any working directory, whatever the venv's editable map.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **settings}


def start_manager(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `python -m flops_manager` in its own process group, output to `workdir`/manager.log."""
    log = workdir / "manager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flops_manager"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,  # no stray .env file from the repo
            start_new_session=True,
        )
    return process, log


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the process and everything in its group: SIGTERM, then SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
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


@dataclass(frozen=True)
class ManagerServer:
    """A running `python -m flops_manager`: where it listens, its admin token, process, log."""

    base_url: str
    admin_token: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(errors="replace")


def _wait_until_healthy(server: ManagerServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"manager exited with {server.process.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.base_url}/api/flops/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"manager not healthy after {timeout} s:\n{server.output()}")


@pytest.fixture
def manager_server(tmp_path: Path) -> Iterator[ManagerServer]:
    """The real manager on a free port with a fresh data dir; stopped (whole group) at the end."""
    workdir = tmp_path / "manager"
    workdir.mkdir()
    port = free_port()
    env = manager_env(
        FLOPS_ADMIN_TOKEN=ADMIN_TOKEN,
        FLOPS_HOST="127.0.0.1",
        FLOPS_PORT=str(port),
        FLOPS_DATA_DIR=str(workdir / "data"),
        FLOPS_MLFLOW_PORT=str(free_port()),
        FLOPS_DATA_SERVER_PORT=str(free_port()),
        FLOPS_LOCAL_NODES="3",
        FLOPS_ALLOW_LOCAL_REPOS="true",
    )
    process, log = start_manager(workdir, env)
    server = ManagerServer(f"http://127.0.0.1:{port}", ADMIN_TOKEN, process, log)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        stop_process_group(process)
        kill_leftover_services(workdir / "data" / "services")


def service_pids(state_dir: Path) -> list[int]:
    """Process-group ids of the services the manager's local orchestrator recorded."""
    pids = []
    for record in state_dir.glob("*/service.json"):
        pgid = json.loads(record.read_text()).get("pgid")
        if pgid:
            pids.append(int(pgid))
    return pids


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
    """A safety net for failing tests: no service process outlives its test."""
    for pgid in service_pids(state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`examples/sklearn-digits` as a one-commit Git repo, by its file:// URL."""
    repo = tmp_path_factory.mktemp("repos") / "sklearn-digits"
    shutil.copytree(ROOT / "examples" / "sklearn-digits", repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "example"]):
        subprocess.run([*git, *args], cwd=repo, check=True)
    return f"file://{repo}"


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    """A real manager (embedded default, local repos allowed) shared by a module's tests."""
    from tests.flops_manager.api.manager_process import ManagerProcess

    manager = ManagerProcess(tmp_path_factory.mktemp("manager"))
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()
