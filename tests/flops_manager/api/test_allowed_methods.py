"""OPTIONS and 405 answers name every method of the path in `Allow` (RFC 9110)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def _allow(header: str | None) -> set[str]:
    return {m.strip() for m in (header or "").split(",") if m.strip()}


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/flops/projects", {"GET", "POST", "OPTIONS"}),
        ("/api/flops/projects/abc", {"GET", "DELETE", "OPTIONS"}),
        ("/api/flops/tokens", {"GET", "POST", "OPTIONS"}),
        ("/api/flops/database", {"DELETE", "OPTIONS"}),
        ("/api/flops/health", {"GET", "OPTIONS"}),
    ],
)
def test_options_is_204_with_every_method_of_the_path(
    client: TestClient, path: str, methods: set[str]
) -> None:
    response = client.options(path)  # no token: it says what the OpenAPI page says

    assert response.status_code == 204
    assert _allow(response.headers.get("Allow")) == methods


@pytest.mark.parametrize(
    ("method", "path", "methods"),
    [
        ("PUT", "/api/flops/projects", {"GET", "POST", "OPTIONS"}),
        ("PATCH", "/api/flops/tokens/1", {"DELETE", "OPTIONS"}),
        ("POST", "/api/flops/health", {"GET", "OPTIONS"}),
    ],
)
def test_every_405_names_all_methods_of_the_path(
    client: TestClient, admin: dict[str, str], method: str, path: str, methods: set[str]
) -> None:
    response = client.request(method, path, headers=admin)

    assert response.status_code == 405
    assert _allow(response.headers.get("Allow")) == methods


def test_options_on_an_unknown_path_is_404(client: TestClient) -> None:
    assert client.options("/api/flops/nothing-here").status_code == 404
