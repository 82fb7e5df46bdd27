"""The project list: one page of summaries, read with a few indexed queries.

A summary is what a list needs to show (id, customer, state, message, timestamps, progress,
strategy, learners), never the stored configuration, result or events. The configuration's
few listed fields are read by the database (JSON path extraction), so a project with a large
configuration costs a list no more than a small one; round progress is counted from the
index of the project's events; rows come newest first, ordered by `(created_at, id)`, which
an index serves for the admin, per customer and per state.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.orm import Session

from flops_core.redact import redact_url
from flops_manager.db import Project, ProjectEvent
from flops_manager.db.models import iso_utc
from flops_manager.schemas import ACTIVE_STATES, ProjectState
from flops_manager.services.tokens import Caller

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "ProjectPage", "list_project_summaries"]

#: Summaries per page unless the request says otherwise, and the most a request may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: The largest offset accepted: far beyond any real list, well within a 64-bit integer.
MAX_OFFSET = 10**9

_TRAINING = ("training_configuration",)


def _config(*path: str) -> Any:
    return Project.config[(*_TRAINING, *path)]


_COLUMNS = (
    Project.id,
    Project.customer_id,
    Project.state,
    Project.message,
    Project.repo_url,
    Project.commit,
    Project.created_at,
    Project.updated_at,
    _config("mode").as_string().label("mode"),
    _config("strategy").as_string().label("strategy"),
    _config("training_rounds").as_integer().label("training_rounds"),
    _config("training_cycles").as_integer().label("training_cycles"),
    _config("learners").as_integer().label("learners"),
    _config("min_available_clients").as_integer().label("min_available_clients"),
)


@dataclass(frozen=True)
class ProjectPage:
    """One page of the list: its summaries and how many projects match in all."""

    summaries: list[dict[str, Any]]
    total: int


def list_project_summaries(
    *,
    session: Session,
    caller: Caller,
    states: Collection[ProjectState] = (),
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> ProjectPage:
    """The caller's projects (every project for the admin), newest first, one page.

    Parameters
    ----------
    session : Session
        The request's database session.
    caller : Caller
        Who asks: a customer sees only its own projects.
    states : Collection[ProjectState]
        Only projects in one of these states; empty: every state.
    limit : int
        At most this many summaries (1..`MAX_LIMIT`).
    offset : int
        Skip this many of the matching projects first.
    """
    where: list[ColumnElement[bool]] = []
    if not caller.is_admin:
        where.append(Project.customer_id == caller.customer_id)
    if states:
        where.append(Project.state.in_(sorted(s.value for s in states)))
    total = session.scalar(select(func.count()).select_from(Project).where(*where)) or 0
    rows = session.execute(
        select(*_COLUMNS)
        .where(*where)
        .order_by(Project.created_at.desc(), Project.id.desc())
        .limit(min(max(limit, 1), MAX_LIMIT))
        .offset(max(offset, 0))
    ).all()
    done = _rounds_done(session, [row.id for row in rows])
    return ProjectPage([_summary(row, done.get(row.id, 0)) for row in rows], total)


def _rounds_done(session: Session, project_ids: Sequence[str]) -> dict[str, int]:
    """Rounds the projects' (root) aggregators reported done, from the events' index."""
    if not project_ids:
        return {}
    counts = session.execute(
        select(ProjectEvent.project_id, func.count())
        .where(
            ProjectEvent.project_id.in_(project_ids),
            ProjectEvent.type == "round_completed",
            ProjectEvent.source == "aggregator",
        )
        .group_by(ProjectEvent.project_id)
    ).all()
    return {project_id: int(count) for project_id, count in counts}


def _summary(row: Row[Any], rounds_done: int) -> dict[str, Any]:
    hierarchical = row.mode == "hierarchical"
    rounds = (row.training_cycles if hierarchical else row.training_rounds) or 0
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "state": row.state,
        "message": row.message,
        "active": ProjectState(row.state) in ACTIVE_STATES,
        "repo_url": redact_url(row.repo_url),
        "commit": row.commit,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
        "progress": {
            "rounds_done": min(rounds_done, rounds) if rounds else rounds_done,
            "rounds": rounds,
            "unit": "cycles" if hierarchical else "rounds",
        },
        "strategy": row.strategy,
        "learners": row.learners or row.min_available_clients,
        "mode": row.mode or "classic",
    }
