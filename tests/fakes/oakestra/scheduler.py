"""Placement of one instance: the fake's root and cluster schedulers in one function.

Like Oakestra's Go scheduler (`bestCpuMemFit`), only `"type": "direct"` constraints count (the
last one wins; `cluster` at the root, `node` inside the chosen cluster), plus `memory`,
`vcpus` and `virtualization` (nodes run `docker`, which SLA `container` is rewritten to).
`addons`, `clusters`, `geo`, `latency` constraints and `vgpus` are ignored. The root compares
a job with each active cluster's free resources summed over its active nodes and takes the
cluster with the most free memory; the cluster then takes its node with the most free
memory. Resources are reserved by every instance that has not ended.

`platform` is not a scheduling criterion in Oakestra (architecture is ignored, the NodeEngine
only pulls that platform's image). The fake prefers fitting clusters and nodes of that
platform; if none fits, it places the instance anyway and the worker fails it (`FAILED`,
"no match for platform"), as a pull or start on the wrong architecture would.

Negative results (service-level status, no instance) in the default, detailed mode:
`TargetClusterNotFound` (direct cluster unknown), `TargetClusterNotActive` (direct cluster
inactive, or no active cluster at all), `TargetClusterNoCapacity` (direct cluster too small),
`NoActiveClusterWithCapacity`, `NO_NODE_FOUND` (direct node not in the chosen cluster),
`NO_QUALIFIED_WORKER_FOUND` (direct node inactive), `NO_WORKER_CAPACITY` (no node of the
cluster fits although the cluster's sums do). With `head_statuses=True` they are mapped to
the only two the Go scheduler of Oakestra v0.4.411 sends (`HEAD_STATUS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.oakestra.model import FakeCluster, FakeNode

__all__ = ["HEAD_STATUS", "Placement", "Reservations", "place"]

HEAD_STATUS = {
    "TargetClusterNotFound": "TargetClusterNotActive",
    "TargetClusterNotActive": "TargetClusterNotActive",
    "TargetClusterNoCapacity": "NoActiveClusterWithCapacity",
    "NoActiveClusterWithCapacity": "NoActiveClusterWithCapacity",
    "NO_NODE_FOUND": "TargetClusterNotActive",
    "NO_QUALIFIED_WORKER_FOUND": "TargetClusterNotActive",
    "NO_WORKER_CAPACITY": "NoActiveClusterWithCapacity",
}
"""Detailed status -> what Oakestra v0.4.411 reports (an empty candidate list is always
`TargetClusterNotActive`, a failed filter `NoActiveClusterWithCapacity`)."""

Reservations = Mapping[str, tuple[float, float]]
"""Node id -> (memory MB, vCPUs) reserved by instances that have not ended."""

_RUNTIMES = ("docker",)


@dataclass(frozen=True)
class Placement:
    """Where an instance goes; `platform_mismatch` says why its start will fail, if it will."""

    cluster: FakeCluster
    node: FakeNode
    platform_mismatch: str | None = None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _direct(job: Mapping[str, Any]) -> tuple[str, str]:
    cluster = node = ""
    for constraint in job.get("constraints") or []:
        if isinstance(constraint, dict) and constraint.get("type") == "direct":
            cluster = str(constraint.get("cluster") or "")
            node = str(constraint.get("node") or "")
    return cluster, node


def _free(node: FakeNode, reserved: Reservations) -> tuple[float, float]:
    memory, vcpus = reserved.get(node.node_id, (0.0, 0.0))
    return node.memory_mb - memory, node.vcpus - vcpus


def _cluster_fits(cluster: FakeCluster, need: tuple[float, float], reserved: Reservations) -> bool:
    free = [_free(node, reserved) for node in cluster.nodes if node.active]
    return bool(free) and sum(m for m, _ in free) >= need[0] and sum(c for _, c in free) >= need[1]


def _platform(value: str) -> str:
    return "/".join(value.split("/")[:2])


def _has_platform(cluster: FakeCluster, platform: str) -> bool:
    wanted = _platform(platform)
    return any(n.active and _platform(n.resolved_platform) == wanted for n in cluster.nodes)


def place(
    job: Mapping[str, Any],
    clusters: list[FakeCluster],
    reserved: Reservations,
    *,
    head_statuses: bool = False,
) -> Placement | str:
    """Return where one more instance of `job` runs, or the negative scheduling status."""
    result = _place(job, clusters, reserved)
    if isinstance(result, str) and head_statuses:
        return HEAD_STATUS[result]
    return result


def _place(
    job: Mapping[str, Any], clusters: list[FakeCluster], reserved: Reservations
) -> Placement | str:
    need = (_number(job.get("memory")), _number(job.get("vcpus")))
    runtime_ok = job.get("virtualization") in _RUNTIMES
    wanted_cluster, wanted_node = _direct(job)
    if wanted_cluster:
        named = [cluster for cluster in clusters if cluster.name == wanted_cluster]
        if not named:
            return "TargetClusterNotFound"
        candidates = [cluster for cluster in named if cluster.active]
        if not candidates:
            return "TargetClusterNotActive"
    else:
        candidates = [cluster for cluster in clusters if cluster.active]
        if not candidates:
            return "TargetClusterNotActive"
    fitting = [c for c in candidates if runtime_ok and _cluster_fits(c, need, reserved)]
    if not fitting:
        return "TargetClusterNoCapacity" if wanted_cluster else "NoActiveClusterWithCapacity"
    platform = job.get("platform")
    if isinstance(platform, str) and platform:  # prefer clusters with a node of that platform
        fitting = [c for c in fitting if _has_platform(c, platform)] or fitting
    cluster = max(fitting, key=lambda c: sum(_free(n, reserved)[0] for n in c.nodes if n.active))
    nodes = cluster.nodes
    if wanted_node:
        nodes = [node for node in nodes if node.name == wanted_node]
        if not nodes:
            return "NO_NODE_FOUND"
        if not any(node.active for node in nodes):
            return "NO_QUALIFIED_WORKER_FOUND"
    able = [
        node
        for node in nodes
        if node.active and all(f >= n for f, n in zip(_free(node, reserved), need, strict=True))
    ]
    if not able:
        return "NO_WORKER_CAPACITY"
    mismatch = None
    if isinstance(platform, str) and platform:
        matching = [n for n in able if _platform(n.resolved_platform) == _platform(platform)]
        if matching:
            able = matching
        else:
            mismatch = (
                f"no match for platform {platform} in the manifest of {job.get('image')} "
                f"(worker is {able[0].resolved_platform})"
            )
    node = max(able, key=lambda n: _free(n, reserved)[0])
    return Placement(cluster=cluster, node=node, platform_mismatch=mismatch)
