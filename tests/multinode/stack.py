"""FLOps on the test bed: a manager on the bridge's host side deploying through the fake
Oakestra root, whose nodes are the bed's namespaces, each running a registered data server.

The manager runs the `oakestra` backend with `FLOPS_SERVICE_RUNTIME=environment` (the fake runs
an SLA's `cmd` as a process, inside the namespace of the node it placed the instance on), binds
the bridge's address and gives services only public URLs of it (`FLOPS_PUBLIC_URL`,
`FLOPS_MLFLOW_HOST`). Each node's data server registers with a node token from the manager.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.oakestra import FakeCluster, FakeNode, FakeOakestra
from tests.flops_manager.api.manager_process import ManagerProcess
from tests.multinode.testbed import TestBed
from tests.wait import eventually

__all__ = ["LOOPBACK_NAMES", "OAK_PASSWORD", "BedStack", "bed_clusters"]

OAK_PASSWORD = "flops-deployer-password-0123"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""What no service on another host may be told to call."""
STALE_AFTER_S = 4.0
"""The manager's FLOPS_NODE_STALE_AFTER_S here (data servers report every second)."""


def bed_clusters(bed: TestBed, roomiest: str | None = None) -> list[FakeCluster]:
    """The bed's clusters and nodes as the fake's, each node with its address and namespace.

    `roomiest` gets twice the memory of the others: Oakestra places services without
    constraints (aggregators) on the node with the most free memory, so they land there.
    """
    return [
        FakeCluster(cluster, nodes=[
            FakeNode(name, address=bed.node(name).address, netns=bed.node(name).netns,
                     memory_mb=32768 if name == roomiest else 16384)
            for name in names
        ])
        for cluster, names in bed.clusters().items()
    ]  # fmt: skip


class BedStack(ManagerProcess):
    """The fake Oakestra root on the bed's nodes and a manager deploying through it.

    Parameters
    ----------
    bed : TestBed
        A started bed; the stack starts its data servers (and they die with its nodes).
    workdir : pathlib.Path
        The manager's and the fake's files.
    settings : str
        More manager settings (FLOPS_* variables).

    Aggregators (unconstrained) land on the bed's first node, which tests do not take down.
    """

    def __init__(self, bed: TestBed, workdir: Path, **settings: str) -> None:
        self.bed = bed
        self.fake = FakeOakestra(
            users={"flops": OAK_PASSWORD}, clusters=bed_clusters(bed, next(iter(bed.nodes))),
            state_dir=workdir / "oakestra", step_delay_s=0.05,
        )  # fmt: skip
        host = bed.host_address
        # The registry is never used here (services run from environments), but an image
        # reference in an SLA must name one that the workers reach, as an operator sets it.
        super().__init__(workdir, FLOPS_HOST=host, FLOPS_MLFLOW_HOST=host,
            FLOPS_REGISTRY=f"{host}:5050",
            FLOPS_ORCHESTRATOR="oakestra", FLOPS_SERVICE_RUNTIME="environment",
            FLOPS_OAKESTRA_USERNAME="flops", FLOPS_OAKESTRA_PASSWORD=OAK_PASSWORD,
            FLOPS_OAKESTRA_BACKOFF_S="0.05", FLOPS_OAKESTRA_POLL_S="0.2",
            FLOPS_OAKESTRA_SCHEDULE_TIMEOUT_S="60", FLOPS_NODE_STALE_AFTER_S=f"{STALE_AFTER_S:g}",
            **settings,
        )  # fmt: skip
        self.env.setdefault("FLOPS_PUBLIC_URL", self.url)
        self.public_url = self.env["FLOPS_PUBLIC_URL"]

    def start(self, timeout: float = 120) -> None:
        """Start the fake and the manager, then every node's data server with its node token;
        return once every node is registered and ready."""
        self.fake.start()
        self.env["FLOPS_OAKESTRA_URL"] = self.fake.url
        super().start(timeout)
        for name in self.bed.nodes:
            self.bed.start_data_server(
                name, manager_url=self.public_url, token=self.node_token(name)
            )
        self.bed.wait_data_servers()
        eventually(
            self.nodes,
            lambda: f"every node of the bed registered and ready:\n{self.node_logs()}",
            60,
            until=lambda nodes: (
                sorted(n["name"] for n in nodes if n["state"] == "ready") == sorted(self.bed.nodes)
            ),
            interval=0.3,
        )

    def stop(self, grace: float = 10.0) -> None:
        """Stop the manager and the fake (the bed's fixture removes the nodes)."""
        super().stop(grace)
        self.fake.stop()

    # The nodes ---------------------------------------------------------------------------
    def node_token(self, node: str) -> str:
        """A fresh node token for `node` (admin API)."""
        created = self.api("POST", "/node-tokens", json={"node": node, "label": "test bed"})
        assert created.status_code == 201, created.text
        token: str = created.json()["token"]
        return token

    def nodes(self, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """`GET /api/flops/nodes`, as the admin unless `headers` say otherwise."""
        kwargs = {} if headers is None else {"headers": headers}
        response = self.api("GET", "/nodes", **kwargs)
        assert response.status_code == 200, response.text
        nodes: list[dict[str, Any]] = response.json()
        return nodes

    def push_mock_data(self, partitions: int, dataset: str = "digits", tag: str = "") -> None:
        """Push like `ManagerProcess.push_mock_data`, then wait until every node that got a
        partition has reported it (reports follow a push within about a second)."""
        super().push_mock_data(partitions, dataset, tag)
        self.wait_tag_reported(f"Admin:{tag or dataset}", min(partitions, len(self.bed.nodes)))

    def wait_tag_reported(self, stored_tag: str, count: int) -> None:
        """Return once `count` nodes report rows under `stored_tag`."""
        eventually(
            lambda: [n["name"] for n in self.nodes() if any(
                t["tag"] == stored_tag and t["rows"] > 0 for t in n["tags"])],
            f"{count} nodes reporting data under {stored_tag}",
            15,
            until=lambda holders: len(holders) >= count,
        )  # fmt: skip

    def node_view(self, name: str) -> dict[str, Any]:
        """The admin's view of one node."""
        return next(n for n in self.nodes() if n["name"] == name)

    def node_logs(self) -> str:
        """The data servers' output and the manager's, for failure messages."""
        parts = [f"--- {n.name}:\n{n.output()[-3000:]}" for n in self.bed.nodes.values()]
        return "\n".join([*parts, f"--- manager:\n{self.output()[-5000:]}"])

    # What the manager sent Oakestra ---------------------------------------------------------
    def microservices(self, since: int = 0) -> list[dict[str, Any]]:
        """Every microservice of the SLAs received after the first `since` ones."""
        return [
            entry
            for sla in self.fake.received_slas[since:]
            for application in sla.get("applications", [])
            for entry in application.get("microservices", [])
        ]

    def loopback_mentions(self, since: int = 0) -> list[str]:
        """Microservices (name: text) whose SLA entry names a loopback host anywhere."""
        found = []
        for entry in self.microservices(since):
            text = json.dumps(entry)
            for name in LOOPBACK_NAMES:
                if (at := text.find(name)) >= 0:
                    context = text[max(0, at - 200) : at + 100]
                    found.append(f"{entry.get('microservice_name')}: {name} in ...{context}...")
        return found

    def delete_projects(self) -> None:
        """Delete every project (what it still runs is undeployed): a test's cleanup."""
        for project in self.api("GET", "/projects").json():
            self.api("DELETE", f"/projects/{project['id']}")

    def assert_nothing_left(self) -> None:
        """Every service deleted, the application too, no instance process alive."""
        eventually(lambda: self.fake.services() == [], "every service deleted", 15, interval=0.1)
        assert self.fake.applications() == []
        assert self.fake.running_instances() == []
