"""Hierarchical FL's cluster plan: round-robin learners, empty clusters, simulated clusters."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_manager.lifecycle.cluster_plan import plan_clusters, simulate_clusters
from flops_manager.lifecycle.training_watch import ProjectFailure
from flops_manager.orchestrators import Capabilities, LocalOrchestrator


def test_learners_are_spread_round_robin_and_empty_clusters_are_named(tmp_path: Path) -> None:
    with LocalOrchestrator(tmp_path, clusters={"a": ["a1"], "b": ["b1"], "c": ["c1"]}) as local:
        plan = plan_clusters(local, ["a", "b", "c"], 2)
        full = plan_clusters(local, ["a", "b", "c"], 7)

    assert plan.learners_of == {"a": [0], "b": [1], "c": []}
    assert (plan.active, plan.empty) == (["a", "b"], ["c"])
    assert plan.placeable == {"a", "b", "c"}
    assert [len(members) for members in full.learners_of.values()] == [3, 2, 2]


def test_configured_clusters_the_orchestrator_does_not_know_are_not_pinned(
    tmp_path: Path,
) -> None:
    with LocalOrchestrator(tmp_path) as local:  # one cluster, "local"
        plan = plan_clusters(local, ["edgeA", "edgeB"], 4)
    assert plan.active == ["edgeA", "edgeB"] and plan.placeable == frozenset()


class _NoSimulation(LocalOrchestrator):
    """A backend that cannot make clusters up (as `docker`)."""

    kind = "nosimulation"
    capabilities = Capabilities()


def test_no_configured_cluster_says_what_to_set_where_none_can_be_simulated(
    tmp_path: Path,
) -> None:
    with (
        _NoSimulation(tmp_path) as backend,
        pytest.raises(
            ProjectFailure, match="nosimulation orchestrator needs clusters: set FLOPS_CLUSTERS"
        ),
    ):
        plan_clusters(backend, [], 4)


def test_the_embedded_default_simulates_two_clusters_of_min_available_learners(
    tmp_path: Path,
) -> None:
    # Execute: the original hierarchical SLA (no learner count, 2 per cluster), 3 nodes
    with LocalOrchestrator(tmp_path) as local:
        plan = plan_clusters(local, [], None, min_available=2, nodes=3)

    # Assert: nodes cut in two (earlier larger), two learners each, none pinned
    assert plan.simulated and plan.learners == 4
    assert plan.learners_of == {"sim0": [0, 1], "sim1": [2, 3]}
    assert plan.nodes_of == {"sim0": [0, 1], "sim1": [2]}
    assert plan.node_of == {0: 0, 1: 1, 2: 2, 3: 2}
    assert plan.placeable == frozenset()
    assert "sim0: node0, node1 (learner0, learner1); sim1: node2 (learner2, learner3)" in (
        plan.describe()
    )
    assert plan.split()["clusters"]["sim1"] == {
        "nodes": ["node2"],
        "learners": ["learner2", "learner3"],
    }


def test_configured_clusters_win_over_simulated_ones(tmp_path: Path) -> None:
    with LocalOrchestrator(tmp_path, clusters={"edgeA": ["a"], "edgeB": ["b"]}) as local:
        plan = plan_clusters(local, ["edgeA", "edgeB"], None, min_available=2, nodes=4)
    assert not plan.simulated
    assert plan.learners_of == {"edgeA": [0], "edgeB": [1]}


@pytest.mark.parametrize(
    ("nodes", "min_available", "learners", "expected"),
    [
        # the large original SLA: 3 per cluster
        (3, 3, None, {"sim0": ([0, 1], [0, 1, 2]), "sim1": ([2], [3, 4, 5])}),
        # a learner count is cut into as many clusters (at most 2) as can each get 2
        (4, 2, 5, {"sim0": ([0, 1], [0, 1, 2]), "sim1": ([2, 3], [3, 4])}),
        (4, 2, 3, {"sim0": ([0, 1, 2, 3], [0, 1, 2])}),
        # one node: one cluster of it
        (1, 2, None, {"sim0": ([0], [0, 1])}),
    ],
)
def test_the_split_rule(
    nodes: int, min_available: int, learners: int | None,
    expected: dict[str, tuple[list[int], list[int]]],
) -> None:  # fmt: skip
    plan = simulate_clusters(nodes, min_available, learners)

    assert {n: (plan.nodes_of[n], plan.learners_of[n]) for n in plan.learners_of} == expected
    for name, members in plan.learners_of.items():
        assert len(members) >= min_available
        assert all(plan.node_of[i] in plan.nodes_of[name] for i in members)
