"""The clusters and nodes the `local` backend reports, and placement of specs on them.

They are names only: every node is this machine. Configuring several lets the manager
exercise placement and hierarchical FL (one aggregator per cluster) without other hosts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from flops_manager.orchestrators.local_process import host_platform
from flops_manager.orchestrators.orchestrator import ClusterInfo, DeployError, NodeInfo
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = ["LocalTopology"]


class LocalTopology:
    """Cluster names with their node names; by default `local` with one node, the host.

    Parameters
    ----------
    clusters : Mapping[str, Sequence[str]] | None
        Each cluster's node names, in order of preference.

    Raises
    ------
    ValueError
        No cluster, or a cluster without nodes.
    """

    def __init__(self, clusters: Mapping[str, Sequence[str]] | None = None) -> None:
        configured = clusters if clusters is not None else {"local": [socket.gethostname()]}
        self._clusters = {name: list(nodes) for name, nodes in configured.items()}
        if not self._clusters or not all(self._clusters.values()):
            raise ValueError("configure at least one cluster, each with at least one node")

    def place(self, spec: ServiceSpec) -> tuple[str, str]:
        """Return the (cluster, node) the spec runs on: the first that fits its placement.

        `required_addon` is not checked: every local node can run every FLOps role.

        Raises
        ------
        DeployError
            Unknown cluster or node, or this machine's platform is not among `platforms`.
        """
        host = host_platform()
        wanted = {"/".join(platform.split("/")[:2]) for platform in spec.platforms}
        if wanted and host not in wanted:
            raise DeployError(f"this machine is {host}; the service needs one of {spec.platforms}")
        cluster, node = spec.placement.cluster, spec.placement.node
        if cluster is not None and cluster not in self._clusters:
            raise DeployError(f"unknown cluster {cluster!r}; known: {sorted(self._clusters)}")
        candidates = [cluster] if cluster is not None else list(self._clusters)
        if node is None:
            return candidates[0], self._clusters[candidates[0]][0]
        for name in candidates:
            if node in self._clusters[name]:
                return name, node
        raise DeployError(f"unknown node {node!r} in cluster(s) {candidates}")

    def clusters(self) -> list[ClusterInfo]:
        """Return the configured clusters."""
        return [
            ClusterInfo(cluster_id=name, name=name, nodes=list(nodes))
            for name, nodes in self._clusters.items()
        ]

    def nodes(self) -> list[NodeInfo]:
        """Return the configured nodes, each with this machine's platform, CPUs and memory."""
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        return [
            NodeInfo(
                node_id=node,
                name=node,
                cluster=cluster,
                platform=host_platform(),
                vcpus=os.cpu_count(),
                memory_mb=memory_mb,
            )
            for cluster, nodes in self._clusters.items()
            for node in nodes
        ]
