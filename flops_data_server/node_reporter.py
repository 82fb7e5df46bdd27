"""A node's reports to the manager: who it is, which tags it holds with how many rows, who read.

Design: one background thread owns the HTTP client and sends `PUT {manager}/api/flops/nodes/
{name}` with the node token as bearer. It reports at start, every `every_s` seconds, and
`debounce_s` after the first change announced by `poke()` (a stored or dropped dataset, a read):
changes close together make one report, and a change during a report makes another right
after it. Flight calls only `poke()`, which never waits for the manager. A failed report is
retried with exponential backoff and jitter, at most `every_s` apart, for as long as the node
runs: the data keeps being served whatever the manager answers. A failure is logged once per
kind (unreachable, a server error, a refused token) and recovery once, so a node that cannot
reach its manager for hours writes a handful of lines, not thousands.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from flops_core.logs import get_logger
from flops_core.redact import redact_url

__all__ = ["NodeIdentity", "NodeReporter"]

_log = get_logger("data_server.reports")
_FIRST_RETRY_S = 0.5


@dataclass(frozen=True)
class NodeIdentity:
    """Who a node says it is in its reports.

    Attributes
    ----------
    name : str
        The node's name (as Oakestra knows the worker).
    cluster : str
        The cluster it belongs to.
    platform : str
        e.g. `linux/amd64`.
    address : str
        The host other hosts reach the node at.
    port : int
        Its data server's port.
    version : str
        The FLOps version of the data server.
    """

    name: str
    cluster: str
    platform: str
    address: str
    port: int
    version: str = ""


class NodeReporter:
    """Report a node to the manager from a background thread; `start()`, `poke()`, `close()`.

    Parameters
    ----------
    manager_url : str
        The manager's base URL, e.g. `http://10.0.0.1:5072`.
    token : str
        The node token; sent as `Authorization: Bearer`, never logged.
    node : NodeIdentity
        Name, cluster, platform, address and port of the node.
    tags : Callable[[], dict[str, int]]
        Stored tag -> rows, asked before each report.
    reads : Callable[[], dict[str, int]]
        Reader host -> datasets served, asked before each report.
    every_s : float
        Seconds between two reports when nothing changes.
    debounce_s : float
        Seconds from a change to its report.
    request_timeout : float
        Seconds one report may take.
    """

    def __init__(
        self,
        *,
        manager_url: str,
        token: str,
        node: NodeIdentity,
        tags: Callable[[], dict[str, int]],
        reads: Callable[[], dict[str, int]],
        every_s: float = 15.0,
        debounce_s: float = 0.5,
        request_timeout: float = 10.0,
    ) -> None:
        self.node = node
        self.url = f"{manager_url.rstrip('/')}/api/flops/nodes/{node.name}"
        self.every_s = every_s
        self.debounce_s = debounce_s
        self.request_timeout = request_timeout
        self._tags = tags
        self._reads = reads
        self._client = httpx.Client(
            timeout=request_timeout, headers={"Authorization": f"Bearer {token}"}
        )
        self._cond = threading.Condition()
        self._closing = False
        self._changed_at: float | None = None
        self._thread: threading.Thread | None = None
        self._problem: str | None = None  # the kind of the last failure, while it lasts
        self._delivered = False
        #: Reports the manager accepted so far.
        self.accepted = 0
        #: Reports that failed since the last accepted one.
        self.failures = 0

    def start(self) -> None:
        """Send the first report now and keep reporting until `close()`."""
        _log.info(
            "Reporting node %s (cluster %s, %s, %s:%s) to %s every %g s",
            self.node.name, self.node.cluster, self.node.platform, self.node.address,
            self.node.port, redact_url(self.url), self.every_s,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="flops-node-report", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Something changed: report within `debounce_s` seconds. Returns at once."""
        with self._cond:
            if self._changed_at is None:
                self._changed_at = time.monotonic()
                self._cond.notify_all()

    def close(self) -> None:
        """Stop reporting (a report under way may take up to `request_timeout` to end)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.request_timeout + 1.0)
            self._thread = None
        self._client.close()

    # -- the reporting thread ---------------------------------------------------------------

    def _run(self) -> None:
        due = time.monotonic()
        while self._wait_until_due(due):
            if self._report():
                self.failures = 0
                due = time.monotonic() + self.every_s
            else:
                self.failures += 1
                backoff = min(self.every_s, _FIRST_RETRY_S * 2 ** (self.failures - 1))
                due = time.monotonic() + backoff * random.uniform(0.5, 1.0)

    def _wait_until_due(self, due: float) -> bool:
        """Wait for `due` or a change's debounce time, whichever is first; False once closing."""
        with self._cond:
            while not self._closing:
                now = time.monotonic()
                wake = due
                if self._changed_at is not None:
                    wake = min(wake, self._changed_at + self.debounce_s)
                if now >= wake:
                    self._changed_at = None
                    return True
                self._cond.wait(wake - now)
            return False

    def _body(self) -> dict[str, Any]:
        node = self.node
        return {
            "cluster": node.cluster, "platform": node.platform, "address": node.address,
            "port": node.port, "tags": self._tags(), "reads": self._reads(),
            "version": node.version,
        }  # fmt: skip

    def _report(self) -> bool:
        """Send one report; whether the manager accepted it. Logs what went wrong, once."""
        try:
            response = self._client.put(self.url, json=self._body())
        except httpx.HTTPError as e:
            self._failed(
                f"unreachable: {type(e).__name__}",
                "Cannot reach the manager at %s to report node %s (%s: %s); still serving "
                "data and retrying",
                redact_url(self.url), self.node.name, type(e).__name__, e,
            )  # fmt: skip
            return False
        status = response.status_code
        if status < 300:
            self.accepted += 1
            if self._problem is not None or not self._delivered:
                _log.info("Node %s is registered with the manager", self.node.name)
            self._problem = None
            self._delivered = True
            return True
        detail = _detail(response)
        if status in (401, 403):
            self._failed(
                f"refused: {status}",
                "The manager refused the node token of node %s (HTTP %s: %s); ask the FLOps "
                "admin for a node token for this node (`flops node-token create %s`) and "
                "restart the data server with it. Still serving data and retrying",
                self.node.name, status, detail, self.node.name, error=True,
            )  # fmt: skip
        elif status >= 500:
            self._failed(
                f"server error: {status}",
                "The manager answered the report of node %s with HTTP %s (%s); still serving "
                "data and retrying",
                self.node.name, status, detail,
            )  # fmt: skip
        else:
            self._failed(
                f"rejected: {status}",
                "The manager rejected the report of node %s at %s with HTTP %s: %s; is "
                "--manager-url the manager's base URL? Still serving data and retrying",
                self.node.name, redact_url(self.url), status, detail, error=True,
            )  # fmt: skip
        return False

    def _failed(self, kind: str, message: str, *args: Any, error: bool = False) -> None:
        """Log a failed report when its kind differs from the last one's."""
        if kind != self._problem:
            (_log.error if error else _log.warning)(message, *args)
        self._problem = kind


def _detail(response: httpx.Response) -> str:
    """The manager's `detail` of an error answer, or the start of its body."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else (str(detail) if detail else response.text)
    return text[:300] or response.reason_phrase
