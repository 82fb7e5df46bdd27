"""The callback route takes one event or a list of them, with the project's callback token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_core.api_tokens import hash_token
from flops_manager.api.deps import get_runtime
from flops_manager.db import Database, Project

TOKEN = "flops_callback-token-for-the-test-0123456789"


class _Lifecycle:
    """Stands in for the project runners: keeps what the route hands them, in order."""

    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []

    def deliver(self, project_id: str, event: dict[str, Any]) -> None:
        self.delivered.append(event)


class _Runtime:
    def __init__(self) -> None:
        self.lifecycle = _Lifecycle()


@pytest.fixture
def runtime(app: FastAPI) -> Iterator[_Runtime]:
    """The route's runtime without starting MLflow, data servers or runners."""
    runtime = _Runtime()
    app.dependency_overrides[get_runtime] = lambda: runtime
    yield runtime
    app.dependency_overrides.clear()


def _project(database: Database) -> str:
    with database.session() as session:
        project = Project(
            customer_id="acme", state="training", config={}, repo_url="file:///repo",
            callback_token_hash=hash_token(TOKEN),
        )  # fmt: skip
        session.add(project)
        session.flush()
        return project.id


def _event(kind: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "project_id": "p", "source": "aggregator", "data": data}


def _reported(client: TestClient, admin: dict[str, str], project_id: str) -> list[Any]:
    events = client.get(f"/api/flops/projects/{project_id}/events", headers=admin).json()
    return [(e["type"], e["data"].get("round")) for e in events if e["kind"] == "event"]


def test_a_list_of_events_is_stored_in_its_order(
    client: TestClient, database: Database, admin: dict[str, str], runtime: _Runtime
) -> None:
    # Prepare
    project_id = _project(database)
    batch = [_event("round_completed", round=n) for n in (1, 2, 3)] + [_event("succeeded")]

    # Execute
    response = client.post(
        f"/api/flops/projects/{project_id}/callbacks", json=batch,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip

    # Assert
    assert response.status_code == 204, response.text
    assert _reported(client, admin, project_id) == [
        ("round_completed", 1), ("round_completed", 2), ("round_completed", 3),
        ("succeeded", None),
    ]  # fmt: skip
    assert runtime.lifecycle.delivered == batch


def test_one_event_alone_is_still_taken(
    client: TestClient, database: Database, admin: dict[str, str], runtime: _Runtime
) -> None:
    # Prepare
    project_id = _project(database)

    # Execute
    response = client.post(
        f"/api/flops/projects/{project_id}/callbacks", json=_event("started"),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip

    # Assert
    assert response.status_code == 204, response.text
    assert _reported(client, admin, project_id) == [("started", None)]


def test_a_list_needs_the_token_too(
    client: TestClient, database: Database, runtime: _Runtime
) -> None:
    project_id = _project(database)
    response = client.post(
        f"/api/flops/projects/{project_id}/callbacks", json=[_event("started")],
        headers={"Authorization": "Bearer flops_wrong"},
    )  # fmt: skip
    assert response.status_code == 404


def test_a_list_longer_than_the_limit_is_refused(
    client: TestClient, database: Database, runtime: _Runtime
) -> None:
    project_id = _project(database)
    response = client.post(
        f"/api/flops/projects/{project_id}/callbacks",
        json=[_event("round_completed", round=n) for n in range(1001)],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 422
    assert runtime.lifecycle.delivered == []
