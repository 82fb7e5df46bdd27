"""Registered learner nodes for placement tests, as `services.nodes.list_nodes` returns them."""

from __future__ import annotations

from datetime import UTC, datetime

from flops_manager.services.nodes import RegisteredNode


def registered_node(
    name: str, *, cluster: str = "edgeA", platform: str = "linux/amd64",
    tags: dict[str, int] | None = None, stale: bool = False, address: str | None = None,
    port: int = 11027,
) -> RegisteredNode:  # fmt: skip
    """A node holding `tags` (stored tag -> rows; default 100 rows of `Admin:digits`)."""
    number = sum(name.encode()) % 250 + 2
    return RegisteredNode(
        name=name, cluster=cluster, platform=platform, address=address or f"10.0.0.{number}",
        port=port, tags={"Admin:digits": 100} if tags is None else tags, reads={},
        simulated=False, last_seen=datetime.now(UTC), stale=stale,
    )  # fmt: skip
