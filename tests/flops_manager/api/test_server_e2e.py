"""The real manager process (`python -m flops_manager`) over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e


def test_server_authenticates_and_issues_tokens(manager_server: ManagerProcess) -> None:
    admin = {"Authorization": f"Bearer {manager_server.admin_token}"}
    wrong = "flops_wrong-token-that-must-not-be-logged"

    with httpx.Client(base_url=manager_server.url, timeout=10) as http:
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
    server = ManagerProcess(tmp_path)
    del server.env["FLOPS_ADMIN_TOKEN"]
    server.launch()
    try:
        returncode = server.wait(60)
    finally:
        server.stop()

    output = server.output()
    assert returncode == 2
    assert "set FLOPS_ADMIN_TOKEN (at least 24 characters)" in output
    assert "Traceback" not in output


def test_server_with_short_admin_token_exits_2_without_printing_it(tmp_path: Path) -> None:
    short = "tooshort-secret"
    server = ManagerProcess(tmp_path, FLOPS_ADMIN_TOKEN=short)
    server.launch()
    try:
        returncode = server.wait(60)
    finally:
        server.stop()

    output = server.output()
    assert returncode == 2
    assert "at least 24 characters" in output
    assert short not in output
    assert "Traceback" not in output
