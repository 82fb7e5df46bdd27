"""Registered learner nodes for placement tests, as `services.nodes.list_nodes` returns them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class StandInNode:
    """The fields of `RegisteredNode` (the issue's contract) placement reads."""

    name: str
    cluster: str
    platform: str
    address: str
    port: int
    tags: dict[str, int]
    reads: dict[str, int] = field(default_factory=dict)
    simulated: bool = False
    last_seen: datetime = field(default_factory=lambda: datetime.now(UTC))
    stale: bool = False

    @property
    def data_server_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"grpc://{host}:{self.port}"

    def rows_for(self, stored_tags: Iterable[str]) -> int:
        return sum(self.tags.get(tag, 0) for tag in set(stored_tags))


def registered_node(
    name: str, *, cluster: str = "edgeA", platform: str = "linux/amd64",
    tags: dict[str, int] | None = None, stale: bool = False, address: str | None = None,
    port: int = 11027,
) -> StandInNode:  # fmt: skip
    """A node holding `tags` (stored tag -> rows; default 100 rows of `Admin:digits`)."""
    number = sum(name.encode()) % 250 + 2
    return StandInNode(
        name=name, cluster=cluster, platform=platform, address=address or f"10.0.0.{number}",
        port=port, tags={"Admin:digits": 100} if tags is None else tags, stale=stale,
    )  # fmt: skip
