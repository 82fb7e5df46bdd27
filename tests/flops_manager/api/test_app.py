"""The app itself: construction, health, OpenAPI page, and the mapping of errors to HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_manager.api.deps import ManagerContext
from flops_manager.api.errors import safe_error
from flops_manager.core.config import Settings
from flops_manager.main import ConfigurationError, create_app
from flops_manager.services.tokens import TokenNotFoundError
from tests.flops_manager.api.conftest import ADMIN_TOKEN

HEALTH = "/api/flops/health"


def test_create_app_without_admin_token_fails_clearly(tmp_path: Path) -> None:
    settings = Settings(admin_token=None, data_dir=tmp_path, _env_file=None)

    with pytest.raises(ConfigurationError, match="set FLOPS_ADMIN_TOKEN \\(at least 24"):
        create_app(settings)


def test_lifespan_opens_and_closes_the_default_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "there" / "yet"
    app = create_app(
        Settings(admin_token=ADMIN_TOKEN, data_dir=data_dir, _env_file=None), start_projects=False
    )
    context = app.state.context
    assert isinstance(context, ManagerContext)
    assert context.database is None

    with TestClient(app) as client:
        response = client.get(HEALTH)
        assert context.database is not None

    assert response.status_code == 200
    assert (data_dir / "flops.db").is_file()
    assert context.database is None


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get(HEALTH)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["components"] == {}
    assert body["version"]


def test_health_is_503_when_a_component_is_down(app: FastAPI, client: TestClient) -> None:
    def broken() -> tuple[str, str, bool]:
        raise OSError("secret detail")

    context = app.state.context
    context.health_checks.append(lambda: ("orchestrator", "ok", True))
    context.health_checks.append(lambda: ("mlflow", "unreachable at :5000", False))
    context.health_checks.append(broken)

    response = client.get(HEALTH)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["components"] == {
        "orchestrator": "ok",
        "mlflow": "unreachable at :5000",
        "broken": "error: OSError",
    }
    assert "secret detail" not in response.text


def test_openapi_lists_the_routes_and_documents_every_field(client: TestClient) -> None:
    response = client.get("/api/flops/openapi.json")

    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "FLOps manager"
    assert "Bearer" in spec["info"]["description"]
    assert {"/api/flops/health", "/api/flops/whoami", "/api/flops/tokens"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/flops/tokens"]) == {"get", "post"}
    assert set(spec["paths"]["/api/flops/tokens/{token_id}"]) == {"delete"}
    undocumented = [
        f"{name}.{field}"
        for name, schema in spec["components"]["schemas"].items()
        for field, prop in schema.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []
    assert client.get("/api/flops/docs").status_code == 200


def test_unexpected_error_is_a_generic_500_with_request_id(
    app: FastAPI,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger("flops"), "propagate", True)

    def boom() -> None:
        raise RuntimeError("postgresql://flops:hunter2@db/flops is down")

    app.add_api_route("/api/flops/boom", boom)

    with caplog.at_level(logging.ERROR, logger="flops.manager.api"):
        response = client.get("/api/flops/boom")

    assert response.status_code == 500
    body = response.json()
    assert "hunter2" not in response.text
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "request id" in body["detail"]
    [record] = [r for r in caplog.records if r.name == "flops.manager.api"]
    assert body["request_id"] in record.getMessage()
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


def test_catalog_maps_by_class_and_fills_safe_fields() -> None:
    class VanishedTokenError(TokenNotFoundError):
        pass

    assert safe_error(TokenNotFoundError(7)) == (404, "API token 7 not found")
    assert safe_error(VanishedTokenError(8)) == (404, "API token 8 not found")
    assert safe_error(KeyError("x")) is None
