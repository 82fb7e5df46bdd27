"""The real manager process (`python -m flops_manager`) over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.flops_manager.api.conftest import (
    ManagerServer,
    manager_env,
    start_manager,
    stop_process_group,
)

pytestmark = pytest.mark.e2e


def test_server_authenticates_and_issues_tokens(manager_server: ManagerServer) -> None:
    admin = {"Authorization": f"Bearer {manager_server.admin_token}"}
    wrong = "flops_wrong-token-that-must-not-be-logged"

    with httpx.Client(base_url=manager_server.base_url, timeout=10) as http:
        anonymous = http.get("/api/flops/whoami")
        rejected = http.get("/api/flops/whoami", headers={"Authorization": f"Bearer {wrong}"})
        me = http.get("/api/flops/whoami", headers=admin)
        created = http.post("/api/flops/tokens", headers=admin, json={"customer_id": "acme"})
        token = created.json()["token"]
        customer = http.get("/api/flops/whoami", headers={"Authorization": token})  # bare
        health = http.get("/api/flops/health")

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert rejected.status_code == 401
    assert wrong not in rejected.text
    assert me.json() == {"customer_id": "Admin", "is_admin": True}
    assert created.status_code == 201
    assert customer.json() == {"customer_id": "acme", "is_admin": False}
    assert health.json()["status"] == "ok"
    output = manager_server.output()
    assert "GET /api/flops/whoami" in output  # the log is really captured
    for secret in (manager_server.admin_token, wrong, token):
        assert secret not in output


def test_server_without_admin_token_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    env = manager_env(FLOPS_PORT=str(free_port()), FLOPS_DATA_DIR=str(tmp_path / "data"))
    process, log = start_manager(tmp_path, env)
    try:
        returncode = process.wait(60)
    finally:
        stop_process_group(process)

    output = log.read_text()
    assert returncode == 2
    assert "set FLOPS_ADMIN_TOKEN (at least 24 characters)" in output
    assert "Traceback" not in output


def test_server_with_short_admin_token_exits_2_without_printing_it(tmp_path: Path) -> None:
    short = "tooshort-secret"
    env = manager_env(FLOPS_ADMIN_TOKEN=short, FLOPS_DATA_DIR=str(tmp_path / "data"))
    process, log = start_manager(tmp_path, env)
    try:
        returncode = process.wait(60)
    finally:
        stop_process_group(process)

    output = log.read_text()
    assert returncode == 2
    assert "at least 24 characters" in output
    assert short not in output
    assert "Traceback" not in output
