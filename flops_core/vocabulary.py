"""The names services agree on: ML flavours, strategies, aggregator roles and project states.

Nothing here imports Flower or any service, so that the manager's request schemas and the CLI
can name strategies and flavours without loading the training stack.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_STATES",
    "CLUSTER_NAME_PATTERN",
    "FINAL_STATES",
    "STRATEGY_NAMES",
    "Hierarchy",
    "MLFlavor",
    "ProjectState",
]

#: Names of clusters in hierarchical FL (they appear in event sources and MLflow tags);
#: Oakestra cluster names such as `cluster-1` included.
CLUSTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"

#: Flower strategies users can name (`flwr.server.strategy.<name>`, taken unchanged).
STRATEGY_NAMES: tuple[str, ...] = (
    "FedAvg",
    "FedProx",
    "FedAdam",
    "FedYogi",
    "FedAdagrad",
    "FedAvgM",
    "FedMedian",
    "FedTrimmedAvg",
    "Krum",
    "Bulyan",
    "QFedAvg",
    "FaultTolerantFedAvg",
)


class MLFlavor(StrEnum):
    """ML libraries a repo can be written with; decides how the trained model is logged."""

    SKLEARN = "sklearn"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    KERAS = "keras"


class Hierarchy(StrEnum):
    """Where an aggregator sits: alone (classic FL), or at the root or a cluster of a hierarchy.

    In hierarchical FL the root aggregator's Flower clients are cluster aggregators, each of
    which serves its own learners and is itself a Flower client of the root.
    """

    CLASSIC = "classic"
    ROOT = "root"
    CLUSTER = "cluster"


class ProjectState(StrEnum):
    """Where a project is in its lifecycle (DESIGN.md, "Data flow of one project")."""

    PENDING = "pending"
    BUILDING = "building"
    TRAINING = "training"
    POST_TRAINING = "post_training"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: States a project is still moving through.
ACTIVE_STATES = frozenset(
    {ProjectState.PENDING, ProjectState.BUILDING, ProjectState.TRAINING, ProjectState.POST_TRAINING}
)

#: States a project never leaves; a project's event stream ends when one is reached.
FINAL_STATES = frozenset({ProjectState.COMPLETED, ProjectState.FAILED, ProjectState.CANCELLED})
