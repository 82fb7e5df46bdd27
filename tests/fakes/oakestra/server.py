"""`FakeOakestra`: a fake Oakestra root orchestrator on a local port, for tests.

It answers Oakestra's root API (`routes.py`) with Oakestra's quirks, schedules instances onto
configured clusters and nodes (`scheduler.py`) and runs them as local processes
(`worker.py`), inside a node's network namespace where the node has one (`FakeNode.netns`:
then the node is a separate network host with its own `address`, reported as the instances'
`publicip`, as Oakestra reports its worker's IP). Tests steer it (`expire_tokens`,
`fail_next`, `set_cluster_active`, `set_node_active`) and look inside (`received_slas`,
`requests`, `services()`, `running_instances()`).

What it leaves out of Oakestra: the network component (no service IPs, no netinfo API on
port 10099; only `rr_ip` values outside 10.30.0.0/16 or already used are refused), the
addons, the gRPC cluster registration, organizations other than `root`, user management
beyond `GET /api/user/<name>` and `GET /api/users/`, re-deploying failed instances, and
containers (see `worker.py`).
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.oakestra import responses
from tests.fakes.oakestra.model import ADMIN_ROLES, PROVIDER_ROLES, FakeCluster, FakeUser
from tests.fakes.oakestra.routes import Api, Call
from tests.fakes.oakestra.store import Store
from tests.fakes.oakestra.tokens import TokenIssuer
from tests.fakes.oakestra.worker import RunningInstance, Worker

__all__ = ["FakeOakestra"]

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@dataclass
class _Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int


class FakeOakestra:
    """A fake Oakestra root orchestrator API served on `127.0.0.1:<free port>`.

    Parameters
    ----------
    users : dict[str, str] | None
        Username -> password. Each has the role `Application_Provider`; a user `Admin` has
        Oakestra's four admin roles. As in Oakestra, `Admin`/`Admin` exists unless `users`
        gives `Admin` another password.
    clusters : Iterable[FakeCluster] | None
        Clusters and their nodes; by default none (every deployment then ends
        `TargetClusterNotActive`).
    state_dir : pathlib.Path
        Where instance processes keep their directories and logs.
    token_lifetime_s : float
        Seconds an access token is valid (Oakestra: 600).
    step_delay_s : float
        Seconds between two asynchronous status steps of an instance.
    head_statuses : bool
        Report only the negative scheduling statuses Oakestra v0.4.411 really sends
        (`TargetClusterNotActive`, `NoActiveClusterWithCapacity`) instead of the detailed
        ones; see `scheduler.py`.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        clusters: Iterable[FakeCluster] | None = None,
        *,
        state_dir: Path,
        token_lifetime_s: float = 600.0,
        step_delay_s: float = 0.05,
        head_statuses: bool = False,
    ) -> None:
        accounts = {"Admin": "Admin", **(users or {})}
        self._lock = threading.RLock()
        self._store = Store(
            [
                FakeUser(name, password, list(ADMIN_ROLES if name == "Admin" else PROVIDER_ROLES))
                for name, password in accounts.items()
            ]
        )
        self._clusters = list(clusters or [])
        self._state_dir = Path(state_dir)
        self._tokens = TokenIssuer(token_lifetime_s)
        self._step_delay_s = step_delay_s
        self._head_statuses = head_statuses
        self._failures: list[_Failure] = []
        self._worker: Worker | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.received_slas: list[Any] = []
        """Every JSON body POSTed to `/api/application/` and `/api/service/` by an
        authenticated caller, as sent (rejected ones too; not those answered by `fail_next`)."""
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, status) of every request answered, in order."""

    # Life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Serve in a background thread; return when the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this FakeOakestra has already been started")
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._worker = Worker(
            lock=self._lock,
            store=self._store,
            clusters=self._clusters,
            state_dir=self._state_dir / "worker",
            step_delay_s=self._step_delay_s,
            head_statuses=self._head_statuses,
        )
        self._api = Api(
            lock=self._lock,
            store=self._store,
            clusters=self._clusters,
            tokens=self._tokens,
            worker=self._worker,
            received_slas=self.received_slas,
        )
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=_METHODS)])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="fake-oakestra-http",
            daemon=True,
        )
        self._thread.start()
        for _ in range(1000):
            if server.started or not self._thread.is_alive():
                break
            self._thread.join(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError("the fake Oakestra server did not start")
        return self

    def stop(self) -> None:
        """Stop serving and end every process the fake started; idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:41234`."""
        if self._port is None:
            raise RuntimeError("start() the fake first")
        return f"http://127.0.0.1:{self._port}"

    # Steering ------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (401 at its next use)."""
        self._tokens.expire_access_tokens()

    def fail_next(self, method: str, path: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` requests of `method` whose path matches the regex `path`
        with `status` and a flask-smorest error body, without any effect."""
        with self._lock:
            self._failures.append(_Failure(method.upper(), re.compile(path), status, times))

    def set_cluster_active(self, name: str, active: bool) -> None:
        """Mark a cluster active or not (in Oakestra: it reported in the last 30 s or not)."""
        with self._lock:
            cluster = next((c for c in self._clusters if c.name == name), None)
            if cluster is None:
                raise KeyError(f"no cluster {name!r}")
            cluster.active = active

    def set_node_active(self, name: str, active: bool) -> None:
        """Mark a worker node active or not (in Oakestra: it reported to its cluster lately or
        not); an inactive node gets no new instances."""
        with self._lock:
            node = next((n for c in self._clusters for n in c.nodes if n.name == name), None)
            if node is None:
                raise KeyError(f"no node {name!r}")
            node.active = active

    # Inspection ----------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        """Return the stored service documents, as `GET /api/service/<id>` shows them."""
        with self._lock:
            return [self._store.document(job) for job in self._store.jobs.values()]

    def applications(self) -> list[dict[str, Any]]:
        """Return the stored application documents, as the application lists show them."""
        with self._lock:
            return [self._store.document(app) for app in self._store.apps.values()]

    def running_instances(self) -> list[RunningInstance]:
        """Return the instances whose process is alive."""
        with self._lock:
            return [] if self._worker is None else self._worker.running_instances()

    def user_id(self, username: str) -> str:
        """Return a user's Mongo `_id` (what `GET /api/applications/<userid>` wants)."""
        return self._store.users[username].user_id

    # Serving -------------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        call = Call(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=await request.body(),
        )
        return await run_in_threadpool(self._answer, call)

    def _answer(self, call: Call) -> Response:
        failure = self._take_failure(call)
        response = responses.smorest_error(failure) if failure else self._api.dispatch(call)
        with self._lock:
            self.requests.append((call.method, call.path, response.status_code))
        return response

    def _take_failure(self, call: Call) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == call.method and failure.path.search(call.path):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure.status
        return None
