"""Persistence of projects, their events, API tokens and learner nodes (SQLAlchemy; SQLite or
PostgreSQL)."""

from flops_manager.db.models import (
    ApiToken,
    Base,
    Node,
    NodeToken,
    Project,
    ProjectEvent,
    ProjectService,
)
from flops_manager.db.session import Database

__all__ = [
    "ApiToken",
    "Base",
    "Database",
    "Node",
    "NodeToken",
    "Project",
    "ProjectEvent",
    "ProjectService",
]
