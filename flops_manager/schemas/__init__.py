"""Request and response bodies of the manager's REST API."""

from flops_manager.schemas.project import (
    PostTrainingStep,
    ProjectCreate,
    ProjectState,
    ResourceConstraints,
    TrainingConfiguration,
)

__all__ = [
    "PostTrainingStep",
    "ProjectCreate",
    "ProjectState",
    "ResourceConstraints",
    "TrainingConfiguration",
]
