"""Tables: projects, every state transition and event of a project, its services, API tokens,
mock-data jobs and their events, learner nodes and their node tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiToken",
    "Base",
    "MockDataJob",
    "MockDataJobEvent",
    "Node",
    "NodeToken",
    "Project",
    "ProjectEvent",
    "ProjectService",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp with its time zone: SQLite hands back naive ones; they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def iso_utc(value: datetime | None) -> str | None:
    """A stored timestamp as ISO 8601 with its UTC offset; `None` stays `None`."""
    return None if value is None else as_utc(value).isoformat()


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


class Base(DeclarativeBase):
    """Declarative base of the manager's tables."""


class Project(Base):
    """One FL project: its configuration as submitted, its current state and outcome."""

    __tablename__ = "projects"
    # The project list: newest first, for the admin, per customer and per state.
    __table_args__ = (
        Index("ix_projects_created", "created_at", "id"),
        Index("ix_projects_customer_created", "customer_id", "created_at", "id"),
        Index("ix_projects_state_created", "state", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True, default="pending")
    message: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The URL as given (it may carry credentials): used to clone, never shown or logged.
    repo_url: Mapped[str] = mapped_column(Text)
    commit: Mapped[str | None] = mapped_column(String(64), default=None)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # SHA-256 of the token the project's services send with their events.
    callback_token_hash: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    events: Mapped[list[ProjectEvent]] = relationship(
        back_populates="project", order_by="ProjectEvent.id", cascade="all, delete-orphan"
    )
    services: Mapped[list[ProjectService]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )


class ProjectEvent(Base):
    """A state transition (`kind="state"`) or a reported event (`kind="event"`) of a project."""

    __tablename__ = "project_events"
    # The list's round progress: a project's round_completed events, counted in the index.
    __table_args__ = (Index("ix_project_events_progress", "project_id", "type", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(128), default="manager")
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    project: Mapped[Project] = relationship(back_populates="events")


class ProjectService(Base):
    """A service the manager deployed for a project, so that it can always be undeployed."""

    __tablename__ = "project_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    service_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    orchestrator: Mapped[str] = mapped_column(String(32))
    deployed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undeployed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    project: Mapped[Project] = relationship(back_populates="services")


class ApiToken(Base):
    """A customer's (or an extra admin's) API token, stored as its SHA-256 hash only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class NodeToken(Base):
    """A learner node's enrolment token, stored as its SHA-256 hash only; it registers one node."""

    __tablename__ = "node_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String(63), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    # Issued by the embedded default for its own data servers (replaced at every start).
    simulated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Node(Base):
    """A learner node as it last reported itself: where its data server is, which tags it holds."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    # Stored data tag -> rows held; reader host -> datasets served (never the data itself).
    tags: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    reads: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    version: Mapped[str] = mapped_column(String(64), default="")
    simulated: Mapped[bool] = mapped_column(default=False)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MockDataJob(Base):
    """One mock-data request: a dataset split into partitions and pushed to data servers."""

    __tablename__ = "mock_data_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True, default="pending")
    message: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_tag: Mapped[str] = mapped_column(String(128), index=True)
    # Every partition pushed: partition, node, data server, dataset, rows, label histogram;
    # `dropped` once removed from its data server.
    partitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    measure: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    events: Mapped[list[MockDataJobEvent]] = relationship(
        back_populates="job", order_by="MockDataJobEvent.id", cascade="all, delete-orphan"
    )


class MockDataJobEvent(Base):
    """A state transition (`kind="state"`) or a step (`kind="event"`) of a mock-data job."""

    __tablename__ = "mock_data_job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("mock_data_jobs.id"), index=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    job: Mapped[MockDataJob] = relationship(back_populates="events")
