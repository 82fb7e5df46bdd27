"""Where hierarchical FL trains: the clusters, and which learners train in which.

Three sources of clusters, asked of the orchestrator's `capabilities`: a backend that reports
its own (`reports_clusters`, Oakestra's active clusters); the configured ones
(FLOPS_CLUSTERS), spread over round-robin; or, with none configured on a backend that
`simulates_clusters` (the embedded default), clusters made from the simulated nodes.

The split rule of simulated clusters (`simulate_clusters`): as in the original FLOps, the
`min_*_clients` of a hierarchical project count per cluster. The nodes are cut into
`SIMULATED_CLUSTERS` (2) consecutive groups of nearly equal size, earlier groups one larger
(3 nodes: node0 and node1, then node2), fewer groups when there are fewer nodes. With no
learner count in the body, every cluster gets `min_available_clients` learners; with one,
the learners are cut the same way into as many clusters (at most 2) as can each get
`min_available_clients`. A learner reads the data of its cluster's nodes in turn, so two
learners may share a node, as two learners placed on one Oakestra worker do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flops_manager.lifecycle.training_watch import ProjectFailure
from flops_manager.orchestrators import Orchestrator

__all__ = ["SIMULATED_CLUSTERS", "ClusterPlan", "plan_clusters", "simulate_clusters"]

SIMULATED_CLUSTERS = 2
"""Clusters the embedded default makes of its nodes when none are configured."""


@dataclass(frozen=True)
class ClusterPlan:
    """Clusters in order, the learner indexes of each, and those services can be pinned to."""

    learners_of: dict[str, list[int]]
    placeable: frozenset[str]
    nodes_of: dict[str, list[int]] = field(default_factory=dict)
    """Each simulated cluster's node indexes; empty when the clusters are not simulated."""
    node_of: dict[int, int] = field(default_factory=dict)
    """The node whose data each learner reads; a learner not named here reads node `index`."""

    @property
    def active(self) -> list[str]:
        """Clusters that got at least one learner."""
        return [name for name, members in self.learners_of.items() if members]

    @property
    def empty(self) -> list[str]:
        """Clusters that got no learner (more clusters than learners)."""
        return [name for name, members in self.learners_of.items() if not members]

    @property
    def learners(self) -> int:
        """How many learners the plan deploys."""
        return sum(len(members) for members in self.learners_of.values())

    @property
    def simulated(self) -> bool:
        """Whether the clusters are made up of the embedded default's simulated nodes."""
        return bool(self.nodes_of)

    def split(self) -> dict[str, dict[str, dict[str, list[str]]]]:
        """Each simulated cluster's nodes and learners, by name, as events carry them."""
        return {"clusters": {
            name: {"nodes": [f"node{n}" for n in self.nodes_of.get(name, [])],
                   "learners": [f"learner{i}" for i in members]}
            for name, members in self.learners_of.items()
        }}  # fmt: skip

    def describe(self) -> str:
        """What a project's event says of simulated clusters: why, and which nodes and learners.

        E.g. `... into 2 clusters: sim0: node0, node1 (learner0, learner1); sim1: ...`.
        """
        nodes = sum(len(members) for members in self.nodes_of.values())
        split = "; ".join(
            f"{name}: {', '.join(parts['nodes'])} ({', '.join(parts['learners'])})"
            for name, parts in self.split()["clusters"].items()
        )
        return (
            f"no clusters are configured (FLOPS_CLUSTERS): the embedded default splits its "
            f"{nodes} simulated node{'s' if nodes != 1 else ''} into {len(self.learners_of)} "
            f"cluster{'s' if len(self.learners_of) != 1 else ''}: {split}"
        )


def plan_clusters(
    orchestrator: Orchestrator, configured: Sequence[str], learners: int | None,
    *, min_available: int = 1, nodes: int = 1,
) -> ClusterPlan:  # fmt: skip
    """The clusters a hierarchical project trains in, and its learners in each.

    Parameters
    ----------
    orchestrator : Orchestrator
        Asked for its clusters and what it can do with them; its `kind` names it in messages.
    configured : Sequence[str]
        FLOPS_CLUSTERS.
    learners : int | None
        The body's learner count; `None` when it gives none.
    min_available : int
        The body's `min_available_clients` (per cluster).
    nodes : int
        The nodes the embedded default simulates (used when it simulates clusters).

    Raises
    ------
    ProjectFailure
        There is no cluster to train in; the message says what to do.
    """
    deployed = learners or min_available
    known = [c.name for c in orchestrator.clusters() if c.active]
    capabilities = orchestrator.capabilities
    if capabilities.reports_clusters:
        if not known:
            raise ProjectFailure(
                "hierarchical training needs an active Oakestra cluster and none is active"
            )
        clusters, placeable = known, frozenset(known)
    elif configured:
        clusters = list(configured)
        placeable = frozenset(clusters) & frozenset(known)
    elif capabilities.simulates_clusters:
        return simulate_clusters(nodes, min_available, learners)
    else:
        raise ProjectFailure(
            f"hierarchical training on the {orchestrator.kind} orchestrator needs clusters: set "
            "FLOPS_CLUSTERS on the manager, e.g. edgeA,edgeB"
        )
    learners_of: dict[str, list[int]] = {name: [] for name in clusters}
    for i in range(deployed):
        learners_of[clusters[i % len(clusters)]].append(i)
    return ClusterPlan(learners_of, placeable)


def simulate_clusters(nodes: int, min_available: int, learners: int | None) -> ClusterPlan:
    """Clusters `sim0`, `sim1` of the simulated nodes, by the rule in the module docstring.

    Parameters
    ----------
    nodes : int
        The embedded default's simulated nodes (at least 1).
    min_available : int
        Learners each cluster needs (`min_available_clients`).
    learners : int | None
        The body's learner count (at least `min_available`, the body's validation says so);
        `None`: `min_available` learners per cluster.
    """
    count = min(SIMULATED_CLUSTERS, nodes)
    if learners is not None:
        count = max(1, min(count, learners // min_available))
    total = learners if learners is not None else count * min_available
    nodes_of, learners_of = _cut(range(nodes), count), _cut(range(total), count)
    names = [f"sim{c}" for c in range(count)]
    node_of = {
        learner: nodes_of[c][j % len(nodes_of[c])]
        for c in range(count)
        for j, learner in enumerate(learners_of[c])
    }
    # Nothing is pinned: the local backend's clusters are its own, every node is this machine.
    return ClusterPlan(
        learners_of=dict(zip(names, learners_of, strict=True)), placeable=frozenset(),
        nodes_of=dict(zip(names, nodes_of, strict=True)), node_of=node_of,
    )  # fmt: skip


def _cut(items: range, parts: int) -> list[list[int]]:
    """`items` in `parts` consecutive groups of nearly equal size, earlier groups larger."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for part in range(parts):
        end = start + size + (1 if part < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return groups
