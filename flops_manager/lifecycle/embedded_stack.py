"""The services every project on this machine shares: MLflow and the nodes' ML data servers.

They run as supervised services of the orchestrator (restarted on failure), under the
pseudo-project `system`, so the orchestrator owns their processes and the manager only
checks that they answer. One data server stands for each learner node of the embedded
default; learner `i` reads the data of node `i mod nodes`, as on real nodes each learner
reads its own node's data under the same data tags. Given the manager's URL and a source of
node tokens, the data servers register themselves with the manager as nodes `node<i>` of
cluster `local` at 127.0.0.1, as a data server on a real worker does; on backends whose
learners run on registered worker nodes the stack runs no data server at all (`nodes=0`).

What a killed manager left running of these services is stopped (whole process groups) before
they are started anew, and a port held by another program fails the start naming the port
and its setting (see `stack_leftovers`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from flops_core.errors import TemporaryError
from flops_core.logs import get_logger
from flops_core.mlflow_server import check_mlflow, mlflow_server_launch
from flops_manager.lifecycle.stack_leftovers import port_problem, stop_leftovers
from flops_manager.orchestrators import Orchestrator, RestartPolicy, ServiceSpec, ServiceStatus
from flops_utils.ml_data_client import MLDataClient, MLDataError

__all__ = ["LOCAL_CLUSTER", "NODE_TOKEN_ENV", "SYSTEM_PROJECT", "EmbeddedStack", "StackError"]

SYSTEM_PROJECT = "system"
#: The environment variable a data server reads its node token from (as on real workers).
NODE_TOKEN_ENV = "FLOPS_NODE_TOKEN"
_log = get_logger("manager.stack")
_PROBE_S = 2.0  # one health probe's limit
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
#: The cluster the simulated nodes report.
LOCAL_CLUSTER = "local"


class StackError(TemporaryError, RuntimeError):
    """Raised when MLflow or a data server does not come up or answer; the message says which
    (with its address) and why, and is safe to show users."""


class EmbeddedStack:
    """Start (once) and describe the shared services.

    Parameters
    ----------
    orchestrator : Orchestrator
        Runs the services.
    data_dir : Path
        MLflow's store lives in `data_dir/mlflow`, node `i`'s data in `data_dir/nodes/node<i>`.
    mlflow_port, data_server_port : int
        MLflow's port; node `i`'s data server listens on `data_server_port + i`.
    nodes : int
        Learner nodes simulated on this machine; 0 starts no data server (MLflow only).
    tracking_uri : str | None
        An MLflow server to use instead of starting one (then only the data servers start).
    health_ttl : float
        Seconds a health answer is reused, so that a busy health endpoint does not load MLflow.
    startup_timeout : float
        Seconds a service that was just started may take to answer.
    answer_timeout : float
        Seconds a service that answered before and still runs may take to answer again (a
        stopped or overloaded process), before whatever needs it fails naming it.
    mlflow_host : str
        The address MLflow binds (`0.0.0.0`: every interface, so that other hosts reach it).
        `tracking_url` names it, a wildcard as the loopback address.
    manager_url : str | None
        The manager's URL the data servers register with (with `node_tokens`).
    node_tokens : Callable[[Sequence[str]], Mapping[str, str]] | None
        Called once with `["node0", ...]` before the data servers first start; returns each
        node's token, which its data server gets in the environment (`FLOPS_NODE_TOKEN`).
    """

    def __init__(
        self,
        *,
        orchestrator: Orchestrator,
        data_dir: Path,
        mlflow_port: int,
        data_server_port: int,
        nodes: int,
        startup_timeout: float = 120.0,
        tracking_uri: str | None = None,
        health_ttl: float = 2.0,
        answer_timeout: float = 10.0,
        mlflow_host: str = "127.0.0.1",
        manager_url: str | None = None,
        node_tokens: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.mlflow_host = mlflow_host
        self.manager_url = manager_url
        self._node_tokens = node_tokens
        self._tokens: Mapping[str, str] | None = None  # asked once, reused on restarts
        self.data_dir = data_dir
        self.mlflow_port = mlflow_port
        self.data_server_port = data_server_port
        self.nodes = nodes
        self.startup_timeout = startup_timeout
        self.answer_timeout = answer_timeout
        self.external_tracking_uri = tracking_uri.rstrip("/") if tracking_uri else None
        self.health_ttl = health_ttl
        self._health: tuple[float, tuple[bool, str]] | None = None
        self._lock = threading.Lock()
        self._services: dict[str, str] = {}
        self._leftovers_stopped = False
        self._answered: set[str] = set()  # running services that have answered once
        #: Whether every shared service has answered once.
        self.started = False

    @property
    def tracking_url(self) -> str:
        """The MLflow tracking server."""
        if self.external_tracking_uri:
            return self.external_tracking_uri
        host = _WILDCARD_HOSTS.get(self.mlflow_host, self.mlflow_host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.mlflow_port}"

    @staticmethod
    def node_name(node: int) -> str:
        """The name simulated node `node` registers under: `node<i>`."""
        return f"node{node}"

    def data_server(self, node: int) -> str:
        """Address of node `node`'s data server.

        Raises
        ------
        ValueError
            When the stack simulates no nodes (`nodes=0`).
        """
        if self.nodes <= 0:
            raise ValueError(
                "this manager simulates no learner nodes (nodes=0); learners read the data "
                "servers of the registered nodes"
            )
        return f"grpc://127.0.0.1:{self.data_server_port + node % self.nodes}"

    def ensure_started(self) -> None:
        """Deploy whatever is not running yet and wait until every part answers."""
        with self._lock:
            if not self._leftovers_stopped:
                stop_leftovers(self.orchestrator, SYSTEM_PROJECT, ours=self._services.values())
                self._leftovers_stopped = True
            for name, spec in self._specs().items():
                service_id = self._services.get(name)
                if service_id is None or self.orchestrator.status(service_id).status.terminal:
                    self._check_port(name)
                    self._services[name] = self.orchestrator.deploy(spec)
                    self._answered.discard(name)
            self._wait_healthy()
            self.started = True

    def health(self) -> tuple[bool, str]:
        """Whether MLflow answers, in words; the answer is reused for `health_ttl` seconds."""
        cached = self._health
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.health_ttl:
            return cached[1]
        answer = self._check_tracking()
        self._health = (now, answer)
        return answer

    def _check_tracking(self) -> tuple[bool, str]:
        return check_mlflow(self.tracking_url, timeout=_PROBE_S)

    def stop(self) -> None:
        """Undeploy the shared services."""
        with self._lock:
            for service_id in self._services.values():
                self.orchestrator.undeploy(service_id)
            self._services.clear()
            self._answered.clear()

    def _check_port(self, name: str) -> None:
        """Raise `StackError` naming the port and its setting if another program holds it."""
        if name == "mlflow":
            problem = port_problem(
                self.mlflow_host, self.mlflow_port, "MLflow", "FLOPS_MLFLOW_PORT"
            )
        else:
            node = int(name.removeprefix("dataserver"))
            problem = port_problem(
                "127.0.0.1", self.data_server_port + node, f"the data server of node {node}",
                f"FLOPS_DATA_SERVER_PORT (node {node} listens on it + {node})",
            )  # fmt: skip
        if problem is not None:
            raise StackError(problem)

    def _specs(self) -> dict[str, ServiceSpec]:
        python = sys.executable
        restart = RestartPolicy(policy="on_failure", max_restarts=5)
        store = self.data_dir / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        specs: dict[str, ServiceSpec] = {}
        if self.external_tracking_uri is None:
            launch = mlflow_server_launch(
                store, port=self.mlflow_port, host=self.mlflow_host, python=python
            )
            specs["mlflow"] = ServiceSpec(
                name="mlflow",
                project_id=SYSTEM_PROJECT,
                role="mlflow",
                restart=restart,
                command=list(launch.command),
                env=dict(launch.env),
            )
        tokens = self._registration_tokens()
        for node in range(self.nodes):
            name = self.node_name(node)
            folder = self.data_dir / "nodes" / name / "ml_data"
            port = str(self.data_server_port + node)
            command = [python, "-m", "flops_data_server", "serve", "--host", "127.0.0.1",
                       "--port", port, "--data-dir", str(folder)]  # fmt: skip
            env: dict[str, str] = {}
            if tokens is not None and self.manager_url:
                command += ["--manager-url", self.manager_url, "--node-name", name,
                            "--cluster", LOCAL_CLUSTER,
                            "--advertise-address", "127.0.0.1"]  # fmt: skip
                env[NODE_TOKEN_ENV] = tokens[name]
            specs[f"dataserver{node}"] = ServiceSpec(
                name=f"dataserver{node}", project_id=SYSTEM_PROJECT, role="data_server",
                restart=restart, command=command, env=env,
            )  # fmt: skip
        return specs

    def _registration_tokens(self) -> Mapping[str, str] | None:
        """The simulated nodes' tokens (asked once), or None when they do not register."""
        if self._node_tokens is None or not self.manager_url or self.nodes <= 0:
            return None
        if self._tokens is None:
            self._tokens = self._node_tokens([self.node_name(i) for i in range(self.nodes)])
        return self._tokens

    def _wait_healthy(self) -> None:
        """Wait until every service answers: a new one up to `startup_timeout`, one that
        answered before up to `answer_timeout`; else `StackError` naming the first late one."""
        now = time.monotonic()
        limits = {
            name: self.answer_timeout if name in self._answered else self.startup_timeout
            for name in self._services
        }
        pending = set(self._services)
        while pending:
            for name in sorted(pending):
                state = self.orchestrator.status(self._services[name])
                if state.status is ServiceStatus.FAILED:
                    lines = self.orchestrator.logs(self._services[name], tail=5)
                    raise StackError(f"{self._describe(name)} failed to start: {' | '.join(lines)}")
                if self._answers(name):
                    pending.discard(name)
                    if name not in self._answered:
                        _log.info("%s is up", name)
                    self._answered.add(name)
                elif time.monotonic() - now > limits[name]:
                    raise StackError(
                        f"{self._describe(name)} did not answer within {limits[name]:g} s; "
                        "is its process stopped or overloaded?"
                    )
            if pending:
                time.sleep(0.3)

    def _describe(self, name: str) -> str:
        """A shared service in words, with its address."""
        if name == "mlflow":
            return f"MLflow at {self.tracking_url}"
        node = int(name.removeprefix("dataserver"))
        return f"the data server of node{node} at {self.data_server(node)}"

    def _answers(self, name: str) -> bool:
        if name == "mlflow":
            return self._check_tracking()[0]
        node = int(name.removeprefix("dataserver"))
        try:
            with MLDataClient(self.data_server(node), timeout=_PROBE_S) as client:
                client.list_datasets()
            return True
        except MLDataError:
            return False
