"""Fixtures for the manager's API: an in-process app with a test client, and the real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.main import create_app
from tests.flops_manager.api.manager_process import (
    ADMIN_TOKEN,
    ROOT,
    ManagerProcess,
    alive,
    kill_leftover_services,
    service_pids,
)

# Re-exported: tests import these from here too.
__all__ = ["ADMIN_TOKEN", "ROOT", "alive", "kill_leftover_services", "service_pids"]


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


@pytest.fixture
def manager_server(tmp_path: Path) -> Iterator[ManagerProcess]:
    """The real manager on free ports with a fresh data dir; stopped (whole group) at the end."""
    workdir = tmp_path / "manager"
    workdir.mkdir()
    server = ManagerProcess(workdir)
    try:
        server.start(timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    """A real manager (embedded default, local repos allowed) shared by a module's tests."""
    manager = ManagerProcess(tmp_path_factory.mktemp("manager"))
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()
