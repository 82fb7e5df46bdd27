"""`GET /api/flops/projects`: pages of summaries, filters, progress, and the old JSON-list shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from flops_manager.db import Database, Project, ProjectEvent
from flops_manager.db.models import Base
from flops_manager.schemas import ProjectCreate

PROJECTS = "/api/flops/projects"
TOKENS = "/api/flops/tokens"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _config(*, rounds: int = 5, mode: str = "classic", cycles: int = 1) -> dict[str, Any]:
    body = ProjectCreate.model_validate(
        {
            "ml_repo_url": "https://example.org/repo.git",
            "ml_model_flavor": "sklearn",
            "training_configuration": {
                "mode": mode, "data_tags": ["digits"], "training_rounds": rounds,
                "training_cycles": cycles, "min_available_clients": 2, "learners": 3,
                "strategy": "FedProx", "strategy_params": {"proximal_mu": 0.1},
            },
        }
    )  # fmt: skip
    return body.model_dump(mode="json", exclude={"ml_repo_url"})


def _seed(
    database: Database,
    customer: str,
    count: int,
    *,
    state: str = "completed",
    rounds_done: int = 0,
    first: int = 0,
    **config: Any,
) -> list[str]:
    """`count` projects of `customer`, created one minute apart from minute `first`."""
    ids = []
    with database.session() as session:
        for i in range(count):
            project = Project(
                customer_id=customer, state=state, message=f"{customer} {i}",
                config=_config(**config), repo_url="https://user:secret@example.org/repo.git",
                created_at=T0 + timedelta(minutes=first + i),
            )  # fmt: skip
            for n in range(1, rounds_done + 1):
                project.events.append(
                    ProjectEvent(kind="event", type="round_completed", source="aggregator",
                                 data={"round": n})
                )  # fmt: skip
            project.events.append(
                ProjectEvent(kind="event", type="round_completed", source="learner:x", data={})
            )
            session.add(project)
            session.flush()
            ids.append(project.id)
    return ids


def _customer(client: TestClient, admin: dict[str, str], customer: str) -> dict[str, str]:
    token = client.post(TOKENS, headers=admin, json={"customer_id": customer}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_the_list_is_a_page_of_summaries_newest_first(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    # Prepare: 120 finished projects, each with a configuration and round events
    ids = _seed(database, "alice", 120, rounds_done=4)

    # Execute
    response = client.get(PROJECTS, headers=admin)

    # Assert: the old shape (a JSON list) with 50 summaries, the total and the next page
    assert response.status_code == 200
    page = response.json()
    assert isinstance(page, list)
    assert [p["id"] for p in page] == ids[::-1][:50]
    assert response.headers["X-Total-Count"] == "120"
    assert 'rel="next"' in response.headers["Link"]
    first = page[0]
    assert not {"config", "result", "events", "services"} & set(first)
    assert first["progress"] == {"rounds_done": 4, "rounds": 5, "unit": "rounds"}
    assert first["strategy"] == "FedProx"
    assert first["learners"] == 3
    assert first["mode"] == "classic"
    # what `flops project list` shows
    for field in ("customer_id", "state", "repo_url", "commit", "updated_at", "message"):
        assert field in first
    assert "secret" not in response.text


def test_following_the_next_links_lists_every_project_once(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    ids = set(_seed(database, "alice", 23))
    seen: list[str] = []

    url: str | None = f"{PROJECTS}?limit=10"
    while url is not None:
        response = client.get(url, headers=admin)
        seen += [p["id"] for p in response.json()]
        link = response.headers.get("Link")
        url = httpx.URL(link.split(";")[0].strip("<>")).raw_path.decode() if link else None

    assert len(seen) == 23
    assert set(seen) == ids


def test_filter_by_state_and_customers_see_only_their_own(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    done = _seed(database, "alice", 3)
    training = _seed(database, "alice", 2, state="training", first=10)
    bobs = _seed(database, "bob", 4, first=20)
    alice = _customer(client, admin, "alice")

    by_state = client.get(PROJECTS, headers=admin, params={"state": "training"})
    two_states = client.get(
        PROJECTS, headers=admin, params=[("state", "training"), ("state", "completed")]
    )
    own = client.get(PROJECTS, headers=alice, params={"limit": 500})

    assert {p["id"] for p in by_state.json()} == set(training)
    assert by_state.headers["X-Total-Count"] == "2"
    assert all(p["active"] for p in by_state.json())
    assert len(two_states.json()) == 9
    assert {p["id"] for p in own.json()} == set(done + training)
    assert own.headers["X-Total-Count"] == "5"
    assert not set(bobs) & {p["id"] for p in own.json()}


def test_hierarchical_progress_counts_cycles(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    _seed(database, "alice", 1, rounds_done=2, mode="hierarchical", cycles=3, rounds=4)

    [summary] = client.get(PROJECTS, headers=admin).json()

    assert summary["progress"] == {"rounds_done": 2, "rounds": 3, "unit": "cycles"}


@pytest.mark.parametrize(
    "params",
    [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"state": "sleeping"}],
)
def test_bad_page_parameters_are_422(
    client: TestClient, admin: dict[str, str], params: dict[str, Any]
) -> None:
    response = client.get(PROJECTS, headers=admin, params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_a_database_of_an_older_manager_gets_the_list_indexes(tmp_path: Any) -> None:
    # Prepare: the tables as an older manager made them, without the new indexes
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    for table in Base.metadata.sorted_tables:
        table.create(engine)
        for index in table.indexes:
            index.drop(engine)
    engine.dispose()

    # Execute
    Database(url).close()

    # Assert
    engine = create_engine(url)
    names = {i["name"] for i in inspect(engine).get_indexes("projects")}
    events = {i["name"] for i in inspect(engine).get_indexes("project_events")}
    engine.dispose()
    assert {"ix_projects_created", "ix_projects_customer_created"} <= names
    assert "ix_project_events_progress" in events
