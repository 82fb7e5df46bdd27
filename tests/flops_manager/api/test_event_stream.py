"""`GET /projects/{id}/events/stream`: `Last-Event-ID` resumes; a value that is no id is ignored."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from flops_manager.db import Database, Project, ProjectEvent


def _finished_project(database: Database) -> tuple[str, list[int]]:
    with database.session() as session:
        project = Project(customer_id="Admin", state="completed", config={}, repo_url="file:///r")
        for kind in ("pending", "training", "completed"):
            project.events.append(ProjectEvent(kind="state", type=kind, data={}))
        session.add(project)
        session.flush()
        return project.id, [e.id for e in project.events]


def _streamed_ids(client: TestClient, url: str, headers: dict[str, str]) -> list[int]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return [
        json.loads(line.removeprefix("data: "))["id"]
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


@pytest.mark.parametrize("value", ["null", "", "abc", "-1", "1.5"])
def test_a_last_event_id_that_is_no_event_id_is_ignored(
    client: TestClient, admin: dict[str, str], database: Database, value: str
) -> None:
    project_id, ids = _finished_project(database)

    streamed = _streamed_ids(
        client, f"/api/flops/projects/{project_id}/events/stream",
        {**admin, "Last-Event-ID": value},
    )  # fmt: skip

    assert streamed == ids


def test_last_event_id_resumes_after_that_event(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    project_id, ids = _finished_project(database)

    streamed = _streamed_ids(
        client, f"/api/flops/projects/{project_id}/events/stream",
        {**admin, "Last-Event-ID": str(ids[0])},
    )  # fmt: skip

    assert streamed == ids[1:]


def test_the_stream_of_an_unknown_project_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get("/api/flops/projects/nope/events/stream", headers=admin)

    assert response.status_code == 404


def test_ids_beyond_any_event_id_are_no_server_error(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    project_id, _ = _finished_project(database)
    huge = str(10**30)
    base = f"/api/flops/projects/{project_id}/events"

    resumed = _streamed_ids(client, f"{base}/stream", {**admin, "Last-Event-ID": huge})
    streamed = client.get(f"{base}/stream", headers=admin, params={"after": huge})
    listed = client.get(base, headers=admin, params={"after": huge})

    assert resumed == []
    assert streamed.status_code == 422
    assert listed.status_code == 422
