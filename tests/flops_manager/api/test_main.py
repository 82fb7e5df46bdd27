"""`python -m flops_manager` in-process: exit codes and what it logs (uvicorn not started)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import flops_manager.__main__ as entry
import flops_manager.main
from flops_manager.db import Database
from tests.flops_manager.api.conftest import ADMIN_TOKEN


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean FLOPS_* environment, no .env file, and logging left as the tests had it."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLOPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(entry, "configure_logging", lambda: None)
    monkeypatch.setattr(logging.getLogger("flops"), "propagate", True)
    return monkeypatch


def test_main_serves_the_app_and_never_logs_secrets(
    environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    served: dict[str, Any] = {}

    def fake_run(app: FastAPI, **options: Any) -> bool:
        served.update(options)
        with TestClient(app) as client:  # runs the lifespan, which opens the database
            served["health"] = client.get("/api/flops/health").status_code
        return True

    def local_database(url: str) -> Database:
        served["database_url"] = url
        return Database(f"sqlite:///{Path.cwd() / 'flops.db'}")  # no PostgreSQL server here

    environment.setenv("FLOPS_ADMIN_TOKEN", ADMIN_TOKEN)
    environment.setenv("FLOPS_PORT", "6123")
    environment.setenv("FLOPS_DATABASE_URL", "postgresql+psycopg://flops:hunter2@db/flops")
    environment.setattr(entry, "serve", fake_run)
    environment.setattr(flops_manager.main, "Database", local_database)
    # This test is about the entry point; the project runtime has its own tests.
    real_create_app = entry.create_app
    environment.setattr(
        entry, "create_app", lambda settings: real_create_app(settings, start_projects=False)
    )

    with caplog.at_level(logging.INFO, logger="flops"):
        code = entry.main()

    assert code == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 6123
    assert served["health"] == 200
    assert served["database_url"] == "postgresql+psycopg://flops:hunter2@db/flops"
    assert "opening database postgresql+psycopg://***@db/flops" in caplog.text
    assert "hunter2" not in caplog.text
    assert ADMIN_TOKEN not in caplog.text


def test_main_without_admin_token_exits_2(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry.main() == 2

    assert "set FLOPS_ADMIN_TOKEN (at least 24 characters)" in capsys.readouterr().err


def test_invalid_settings_name_the_variable_without_values(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("FLOPS_ADMIN_TOKEN", ADMIN_TOKEN)
    environment.setenv("FLOPS_PORT", "not-a-port")

    assert entry.main() == 2

    err = capsys.readouterr().err
    assert "FLOPS_PORT:" in err
    assert ADMIN_TOKEN not in err


@pytest.mark.parametrize(
    ("public", "expected"),
    [
        ({}, "set FLOPS_PUBLIC_URL"),
        ({"FLOPS_PUBLIC_URL": "http://10.0.0.1:5072"}, "set FLOPS_MLFLOW_HOST"),
        (
            {"FLOPS_PUBLIC_URL": "http://10.0.0.1:5072", "FLOPS_MLFLOW_HOST": "0.0.0.0",
             "FLOPS_PUBLIC_TRACKING_URI": "http://localhost:5000"},
            "set FLOPS_PUBLIC_TRACKING_URI",
        ),
    ],
)  # fmt: skip
def test_oakestra_with_loopback_service_addresses_exits_2_naming_the_setting(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    public: dict[str, str],
    expected: str,
) -> None:
    # Prepare: an Oakestra manager whose services would get this host's loopback
    for name, value in {
        "FLOPS_ADMIN_TOKEN": ADMIN_TOKEN, "FLOPS_ORCHESTRATOR": "oakestra",
        "FLOPS_OAKESTRA_URL": "http://127.0.0.1:9", "FLOPS_OAKESTRA_USERNAME": "flops",
        "FLOPS_OAKESTRA_PASSWORD": "oak-password-0123", **public,
    }.items():  # fmt: skip
        environment.setenv(name, value)
    environment.setattr(entry, "serve", lambda app, **options: pytest.fail("served"))

    # Execute
    code = entry.main()

    # Assert
    err = capsys.readouterr().err
    assert code == 2 and expected in err
    assert ADMIN_TOKEN not in err and "oak-password-0123" not in err
