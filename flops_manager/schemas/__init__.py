"""Request and response bodies of the manager's REST API."""

from flops_manager.schemas.project import (
    ACTIVE_STATES,
    PostTrainingStep,
    ProjectCreate,
    ProjectState,
    ResourceConstraints,
    TrainingConfiguration,
)
from flops_manager.schemas.project_summary import ProjectProgress, ProjectSummary

__all__ = [
    "ACTIVE_STATES",
    "PostTrainingStep",
    "ProjectCreate",
    "ProjectProgress",
    "ProjectState",
    "ProjectSummary",
    "ResourceConstraints",
    "TrainingConfiguration",
]
