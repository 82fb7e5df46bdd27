"""Request bodies over FLOPS_MAX_BODY_BYTES are a 413 before anything parses them (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.main import create_app
from tests.flops_manager.api.conftest import ADMIN_TOKEN

TOKENS = "/api/flops/tokens"
LIMIT = 2_048
TOO_LARGE = (
    f"request body too large: at most {LIMIT} bytes are accepted (the manager's "
    "FLOPS_MAX_BODY_BYTES)"
)


@pytest.fixture
def small_client(tmp_path: Path, database: Database) -> Iterator[TestClient]:
    settings = Settings(
        admin_token=ADMIN_TOKEN, data_dir=tmp_path, max_body_bytes=LIMIT, _env_file=None
    )
    with TestClient(create_app(settings, database=database, start_projects=False)) as client:
        yield client


def _token_body(size: int) -> bytes:
    head = b'{"customer_id": "alice", "label": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_a_body_declaring_more_than_the_limit_is_413(
    small_client: TestClient, admin: dict[str, str]
) -> None:
    response = small_client.post(
        TOKENS, content=_token_body(LIMIT + 1),
        headers={**admin, "Content-Type": "application/json"},
    )  # fmt: skip

    assert response.status_code == 413
    assert response.json() == {"detail": TOO_LARGE}
    assert response.headers["X-Request-ID"]
    assert small_client.get(TOKENS, headers=admin).json() == []


def test_a_chunked_body_over_the_limit_is_413(
    small_client: TestClient, admin: dict[str, str]
) -> None:
    body = _token_body(LIMIT * 4)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = small_client.post(
        TOKENS, content=chunks(), headers={**admin, "Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {"detail": TOO_LARGE}
    assert small_client.get(TOKENS, headers=admin).json() == []


def test_a_body_within_the_limit_is_parsed(small_client: TestClient, admin: dict[str, str]) -> None:
    body = b'{"customer_id": "alice", "label": "ci"}'

    response = small_client.post(
        TOKENS, content=body, headers={**admin, "Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text


def test_the_default_limit_is_one_mebibyte() -> None:
    assert Settings(admin_token=ADMIN_TOKEN, _env_file=None).max_body_bytes == 1_048_576
