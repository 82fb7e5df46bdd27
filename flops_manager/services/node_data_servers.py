"""Where mock data goes when learners run on the registered nodes: their own data servers.

On a backend that `places_on_nodes` the learner nodes are real hosts, each with its own data
server that registered with the manager. A mock-data job pushes partition `i` to the `i`-th
fresh node by name (`i` modulo their number), through the address the node registered; the
job's partition events name the node. With no fresh node the job fails at once, saying what
to start on the workers. Before the job ends it waits (`await_reports`, a few seconds at
most) until every node it pushed to has reported the tag, so that a project created when the
job has answered finds the data where placement looks for it: in the nodes' reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from flops_core.errors import TemporaryError
from flops_core.logs import get_logger
from flops_manager.services.nodes import RegisteredNode

__all__ = ["NoLearnerNodeError", "NodeDataServers"]

_log = get_logger("manager.mocks")
_REPORT_POLL_S = 0.2


class NoLearnerNodeError(TemporaryError, RuntimeError):
    """Raised when no learner node is registered and fresh to take mock data; retryable once a
    node registers."""


class NodeDataServers:
    """The data servers of the registered, fresh learner nodes, for one mock-data job.

    Parameters
    ----------
    list_nodes : Callable[[], list[RegisteredNode]]
        The registered nodes now (`services.nodes.list_nodes`), stale ones too; asked once,
        by `ensure_started`.
    """

    def __init__(self, list_nodes: Callable[[], list[RegisteredNode]]) -> None:
        self._list_nodes = list_nodes
        self._fresh: list[RegisteredNode] = []

    @property
    def nodes(self) -> int:
        """How many nodes take partitions (0 before `ensure_started`)."""
        return len(self._fresh)

    def ensure_started(self) -> None:
        """Take the fresh nodes, by name; `NoLearnerNodeError` if there is none."""
        fresh = sorted((n for n in self._list_nodes() if not n.stale), key=lambda n: n.name)
        if not fresh:
            raise NoLearnerNodeError(
                "no learner node is registered with the manager and fresh to take the data: "
                "start flops-data-server on the workers with --manager-url and a node token "
                "(see README: running FLOps with Oakestra workers); GET /api/flops/nodes shows "
                "the nodes"
            )
        self._fresh = fresh

    def data_server(self, node: int) -> str:
        """The data server of partition `node`'s node, at the address the node registered."""
        return self._node(node).data_server_url

    def node_name(self, node: int) -> str:
        """The name of partition `node`'s node."""
        return self._node(node).name

    def _node(self, node: int) -> RegisteredNode:
        if not self._fresh:
            self.ensure_started()
        return self._fresh[node % len(self._fresh)]

    def await_reports(self, tag: str, nodes: Iterable[str], timeout: float = 15.0) -> list[str]:
        """Wait until each of `nodes` reports rows under the stored `tag`; those that do not.

        A data server reports within about a second of a push; one that does not within
        `timeout` seconds (its manager URL or token may be wrong) is logged and returned, and
        the data stays on it.
        """
        waiting = set(nodes)
        deadline = time.monotonic() + timeout
        while waiting:
            reported = {n.name for n in self._list_nodes() if n.tags.get(tag, 0) > 0}
            waiting -= reported
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(_REPORT_POLL_S)
        if waiting:
            _log.warning(
                "nodes %s hold the pushed data but have not reported it within %.0f s; "
                "placement finds it once they do",
                ", ".join(sorted(waiting)), timeout,
            )  # fmt: skip
        return sorted(waiting)
