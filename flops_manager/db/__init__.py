"""Persistence of projects, their events and API tokens (SQLAlchemy; SQLite or PostgreSQL)."""

from flops_manager.db.models import ApiToken, Base, Project, ProjectEvent, ProjectService
from flops_manager.db.session import Database

__all__ = ["ApiToken", "Base", "Database", "Project", "ProjectEvent", "ProjectService"]
