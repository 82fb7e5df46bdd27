"""What `GET /api/flops/projects` lists for each project (documentation of its JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from flops_manager.schemas.project import ProjectState

__all__ = ["ProjectProgress", "ProjectSummary"]


class ProjectProgress(BaseModel):
    """How far training got: rounds the aggregator reported done of the rounds asked."""

    rounds_done: int = Field(ge=0, description="Rounds completed (cycles in hierarchical mode).")
    rounds: int = Field(ge=0, description="Rounds asked for (training_cycles when hierarchical).")
    unit: Literal["rounds", "cycles"] = Field(description="What is counted.")


class ProjectSummary(BaseModel):
    """One project in the list: no configuration, result or events (see `GET /projects/{id}`)."""

    id: str = Field(description="The project's id.")
    customer_id: str = Field(description="Whose project it is.")
    state: ProjectState = Field(description="Where the project is in its lifecycle.")
    message: str = Field(description="The last state change's message.")
    active: bool = Field(description="Whether the project is still pending or running.")
    repo_url: str = Field(description="The ML repo's URL, without credentials.")
    commit: str | None = Field(description="The commit trained, once resolved.")
    created_at: datetime = Field(description="When the project was created (UTC).")
    updated_at: datetime = Field(description="When the project last changed (UTC).")
    progress: ProjectProgress = Field(description="Training rounds done of rounds asked.")
    strategy: str | None = Field(description="The Flower strategy.")
    learners: int | None = Field(description="Learners deployed.")
    mode: str = Field(description="classic or hierarchical.")
