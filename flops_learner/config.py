"""The learner's configuration, built at the edge (CLI) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["LearnerConfig"]


class LearnerConfig(BaseModel):
    """Everything one learner process needs."""

    project_id: str = Field(min_length=1)
    repo_dir: Path
    aggregator: str = Field(description="Aggregator gRPC address, host:port.")
    data_server: str = Field("grpc://127.0.0.1:11027", description="ML data server address.")
    data_tags: list[str] = Field(min_length=1)
    name: str = "learner"
    connect_timeout: float = Field(
        300.0, gt=0, description="Seconds to keep retrying while the aggregator is not up."
    )
    callback_url: str | None = None
