"""Projects, their history and tokens survive a restart of the manager (a new engine)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from flops_core.api_tokens import generate_token, hash_token
from flops_manager.db import ApiToken, Database, Project, ProjectEvent, ProjectService


def test_project_with_history_persists_across_restarts(tmp_path: Path) -> None:
    # Prepare
    url = f"sqlite:///{tmp_path / 'flops.db'}"
    database = Database(url)
    with database.session() as session:
        project = Project(
            customer_id="c1", config={"training_rounds": 5}, repo_url="https://x/r.git"
        )
        project.events.append(ProjectEvent(kind="state", type="pending", message="accepted"))
        project.events.append(ProjectEvent(kind="event", type="round_completed", data={"round": 1}))
        project.services.append(
            ProjectService(service_id="svc1", role="aggregator", orchestrator="local")
        )
        session.add(project)
        session.flush()
        project_id = project.id
    database.close()

    # Execute: a new engine on the same file, as after a manager restart
    reopened = Database(url)
    with reopened.session() as session:
        stored = session.get(Project, project_id)

        # Assert
        assert stored is not None
        assert stored.state == "pending"
        assert stored.config == {"training_rounds": 5}
        assert [e.type for e in stored.events] == ["pending", "round_completed"]
        assert stored.events[1].data == {"round": 1}
        assert stored.events[0].timestamp is not None
        assert [s.service_id for s in stored.services] == ["svc1"]
    reopened.close()


def test_tokens_are_stored_as_hashes_only(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    token = generate_token()
    with database.session() as session:
        session.add(ApiToken(token_hash=hash_token(token), customer_id="c1"))
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("flops.db*"))  # with the WAL
    assert hash_token(token).encode() in raw
    assert token.encode() not in raw
    with database.session() as session:
        found = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token))
        ).one()
        assert found.customer_id == "c1"
    database.close()
