"""Where hierarchical FL trains: the clusters, and which learners train in which."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flops_manager.lifecycle.training_watch import ProjectFailure
from flops_manager.orchestrators import Orchestrator

__all__ = ["ClusterPlan", "plan_clusters"]


@dataclass(frozen=True)
class ClusterPlan:
    """Clusters in order, the learner indexes of each, and those services can be pinned to."""

    learners_of: dict[str, list[int]]
    placeable: frozenset[str]

    @property
    def active(self) -> list[str]:
        """Clusters that got at least one learner."""
        return [name for name, members in self.learners_of.items() if members]

    @property
    def empty(self) -> list[str]:
        """Clusters that got no learner (more clusters than learners)."""
        return [name for name, members in self.learners_of.items() if not members]


def plan_clusters(
    orchestrator: Orchestrator, kind: str, configured: Sequence[str], learners: int
) -> ClusterPlan:
    """Spread `learners` over the clusters round-robin.

    Oakestra's active clusters are the clusters there; other backends use the `configured`
    ones (FLOPS_CLUSTERS), pinned where the orchestrator knows them (`local`).

    Raises
    ------
    ProjectFailure
        There is no cluster to train in; the message says what to do.
    """
    known = [c.name for c in orchestrator.clusters() if c.active]
    if kind == "oakestra":
        if not known:
            raise ProjectFailure(
                "hierarchical training needs an active Oakestra cluster and none is active"
            )
        clusters, placeable = known, frozenset(known)
    else:
        clusters = list(configured)
        if not clusters:
            raise ProjectFailure(
                f"hierarchical training on the {kind} orchestrator needs clusters: set "
                "FLOPS_CLUSTERS on the manager, e.g. edgeA,edgeB"
            )
        placeable = frozenset(clusters) & frozenset(known)
    learners_of: dict[str, list[int]] = {name: [] for name in clusters}
    for i in range(learners):
        learners_of[clusters[i % len(clusters)]].append(i)
    return ClusterPlan(learners_of, placeable)
