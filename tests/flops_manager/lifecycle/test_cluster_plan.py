"""Hierarchical FL's cluster plan: round-robin learners, empty clusters, what to configure."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_manager.lifecycle.cluster_plan import plan_clusters
from flops_manager.lifecycle.training_watch import ProjectFailure
from flops_manager.orchestrators import LocalOrchestrator


def test_learners_are_spread_round_robin_and_empty_clusters_are_named(tmp_path: Path) -> None:
    with LocalOrchestrator(tmp_path, clusters={"a": ["a1"], "b": ["b1"], "c": ["c1"]}) as local:
        plan = plan_clusters(local, "local", ["a", "b", "c"], 2)
        full = plan_clusters(local, "local", ["a", "b", "c"], 7)

    assert plan.learners_of == {"a": [0], "b": [1], "c": []}
    assert (plan.active, plan.empty) == (["a", "b"], ["c"])
    assert plan.placeable == {"a", "b", "c"}
    assert [len(members) for members in full.learners_of.values()] == [3, 2, 2]


def test_configured_clusters_the_orchestrator_does_not_know_are_not_pinned(
    tmp_path: Path,
) -> None:
    with LocalOrchestrator(tmp_path) as local:  # one cluster, "local"
        plan = plan_clusters(local, "docker", ["edgeA", "edgeB"], 4)
    assert plan.active == ["edgeA", "edgeB"] and plan.placeable == frozenset()


def test_no_configured_cluster_says_what_to_set(tmp_path: Path) -> None:
    with (
        LocalOrchestrator(tmp_path) as local,
        pytest.raises(ProjectFailure, match="FLOPS_CLUSTERS"),
    ):
        plan_clusters(local, "local", [], 4)
