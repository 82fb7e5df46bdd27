"""The `docker` backend: each service is one container on a single Docker host.

Design. The backend keeps no state of its own: every container carries labels
(`docker_spec.py`) naming its service id, project, role and the orchestrator instance that
created it, so `status()` of a known id works from any `DockerOrchestrator` with the same
`instance` and `label_prefix`, e.g. after a manager restart. Docker supervises the containers:
one-shot services and policy `never` get restart policy `no`, `on_failure` becomes Docker's
`on-failure` with `MaximumRetryCount` (Docker's own backoff: 100 ms, doubling).

Removal. `undeploy()` stops a container (SIGTERM through Docker's init, SIGKILL after
`timeout` rounded up to whole seconds) and renames it with `UNDEPLOYED_SUFFIX`, so that its
`stopped` status and its logs stay queryable; it does not remove it. Containers of ended
services are removed once they have been ended for `retention` seconds (checked at most every
ten minutes, on `deploy()`), or at once by `prune()` (e.g. when a project is deleted). Nothing
keeps running after the manager undeploys a project, and exited containers do not pile up.
`close()` only closes the client: containers outlive it and are left to the manager's
undeploy, as they outlive a crash of the manager.

Network. With `network_mode="host"` (default) services and the manager reach each other at
`127.0.0.1:<port>`, which is what `addresses` report; ports cannot be remapped. With the name
of a user-defined network, `ports` are published on the Docker host at `host_port` and
`addresses` are `<container name>:<container_port>`, reachable from the network's containers.

Platforms. One platform in `spec.platforms` runs the image as that platform (foreign ones
under emulation, where the host has qemu binfmt handlers); several run the host's own if it
is among them, else the first; none runs what the image tag names (`docker_image.py`).
`storage_mb` and `required_addon` are ignored; `vcpus` above the host's CPUs are capped.

Secrets. `spec.env` is never logged (`spec.redacted()` is), but Docker keeps it in the
container's configuration, readable with `docker inspect` by whoever may use the daemon's
socket (who can also read every container's memory). With `init` (default), a command that
does not exist starts the container and fails it with exit code 127; without, `deploy()`
raises `DeployError`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import docker.errors

from flops_core.logs import get_logger
from flops_manager.orchestrators.docker_connection import DockerConnection, DockerHost
from flops_manager.orchestrators.docker_containers import DockerContainers
from flops_manager.orchestrators.docker_image import choose_platform, ensure_image
from flops_manager.orchestrators.docker_spec import (
    HOST_NETWORK,
    DockerLabels,
    container_options,
    service_addresses,
)
from flops_manager.orchestrators.docker_state import container_state, is_ended
from flops_manager.orchestrators.orchestrator import (
    Capabilities,
    ClusterInfo,
    DeployError,
    NodeInfo,
    Orchestrator,
    OrchestratorError,
    OrchestratorHealth,
    OrchestratorUnavailableError,
    ServiceNotFoundError,
    ServiceState,
)
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = ["DockerOrchestrator"]

CLUSTER = "docker"
_COLLECT_INTERVAL = 600.0
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_NOT_NETWORKS = ("bridge", "default", "none")

_log = get_logger("manager.orchestrator")


class DockerOrchestrator(Orchestrator):
    """Run services as containers on one Docker host, through the Docker Engine API.

    Parameters
    ----------
    base_url : str | None
        The daemon's address, e.g. `unix:///var/run/docker.sock` (the default for `None`) or
        `tcp://host:2375`; the manager passes its `FLOPS_DOCKER_HOST` setting.
    instance : str
        Names this orchestrator in the `<label_prefix>.managed-by` label; managers sharing a
        Docker host use different instances and never see each other's services.
    label_prefix : str
        Prefix of the label keys, e.g. `io.flops` for `io.flops.project`.
    network_mode : str
        `host`, or the name of an existing user-defined network (see the module docstring).
    pull : bool
        Pull images that are not on the host (for the wanted platform); else refuse them.
    init : bool
        Run Docker's init as each container's PID 1 (forwards SIGTERM, reaps orphans).
    timeout : float
        Seconds any Docker API call may take (pulls: between two progress messages).
    retention : float | None
        Seconds the containers of ended services are kept; `None` keeps them until `prune()`.

    Raises
    ------
    ValueError
        An invalid `base_url`, `instance`, `label_prefix` or `network_mode`. The daemon is not
        contacted: a daemon that is down shows in `health()` and in the other calls.
    """

    kind = "docker"
    capabilities = Capabilities()
    """Containers on this one host; on the host network (the manager's) they meet at 127.0.0.1."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        instance: str = "flops",
        label_prefix: str = "io.flops",
        network_mode: str = HOST_NETWORK,
        pull: bool = True,
        init: bool = True,
        timeout: float = 60.0,
        retention: float | None = 86400.0,
    ) -> None:
        if not _NAME.match(instance):
            raise ValueError(f"invalid instance name {instance!r}, expected e.g. 'flops'")
        if network_mode in _NOT_NETWORKS or not _NAME.match(network_mode):
            raise ValueError(
                f"network_mode {network_mode!r} is not supported: use 'host' or the name of a "
                "user-defined network (docker network create NAME), where containers "
                "find each other by name"
            )
        self._connection = DockerConnection(base_url, timeout)
        self._containers = DockerContainers(DockerLabels(label_prefix), instance)
        self._network_mode = network_mode
        self._pull, self._init = pull, init
        self._retention = retention
        self._lock = threading.Lock()
        self._next_collection = 0.0

    def deploy(self, spec: ServiceSpec) -> str:
        if spec.image is None:
            raise DeployError("spec.image is required by the docker backend (it runs images)")
        service_id = f"{spec.name.lower()}-{uuid.uuid4().hex[:12]}"
        name = f"flops-{service_id}"
        addresses = service_addresses(spec, self._network_mode, name)
        _log.debug("project %s: deploying %s", spec.project_id, spec.redacted())
        host = self._connection.host()
        self._check_placement(spec, host)
        platform = choose_platform(spec.platforms, host.platform)
        vcpus = spec.resources.vcpus
        if vcpus is not None and host.vcpus and vcpus > host.vcpus:
            _log.warning(
                "project %s: %s asks for %s vCPUs, the Docker host has %s: capped",
                spec.project_id, spec.name, vcpus, host.vcpus,
            )  # fmt: skip
            vcpus = float(host.vcpus)
        self._collect_garbage()
        labels = self._containers.labels.for_service(
            spec, service_id=service_id, instance=self._containers.instance, addresses=addresses
        )
        options, host_options = container_options(
            spec, name=name, labels=labels, network_mode=self._network_mode,
            platform=platform, init=self._init, vcpus=vcpus,
        )  # fmt: skip
        with self._connection.calls() as client:
            try:
                self._check_network(client)
                image_id = ensure_image(
                    client, spec.image, platform, pull=self._pull, project_id=spec.project_id
                )
                container_id = self._containers.create(client, image_id, options, host_options)
            except DeployError as e:
                _log.warning("project %s: cannot deploy %s: %s", spec.project_id, spec.name, e)
                raise
        _log.info(
            "project %s: deployed %s as %s (container %s, %s for %s)", spec.project_id,
            spec.name, service_id, container_id[:12], spec.image, platform or host.platform,
        )  # fmt: skip
        return service_id

    def status(self, service_id: str) -> ServiceState:
        with self._connection.calls() as client:
            return self._state(self._containers.get(client, service_id))

    def logs(self, service_id: str, tail: int | None = None) -> list[str]:
        if tail is not None and tail < 0:
            raise ValueError("tail must be >= 0")
        with self._connection.calls() as client:
            attrs = self._containers.get(client, service_id)
            try:
                data = client.logs(
                    attrs["Id"], stdout=True, stderr=True, tail="all" if tail is None else tail
                )
            except docker.errors.NotFound as e:
                raise ServiceNotFoundError(f"service {service_id!r} was removed") from e
            except docker.errors.APIError as e:
                if e.status_code == 501:  # a logging driver that cannot be read back
                    return []
                raise
        lines = [line.rstrip("\r") for line in bytes(data).decode("utf-8", "replace").split("\n")]
        return lines[:-1] if lines and lines[-1] == "" else lines

    def undeploy(self, service_id: str, timeout: float = 10.0) -> None:
        with self._connection.calls() as client:
            attrs = self._containers.find(client, service_id)
            if attrs is None or is_ended(attrs):
                return
            stopped = self._containers.stop(client, attrs, timeout)
        if stopped is None:
            return  # removed meanwhile: nothing is left to stop
        state = self._state(stopped)
        if stopped["State"]["Running"]:
            raise OrchestratorUnavailableError(
                f"the container of {service_id} is still running after the stop; undeploy again"
            )
        _log.info("project %s: undeployed %s: %s", state.project_id, service_id, state.message)

    def list_services(self, project_id: str | None = None) -> list[ServiceState]:
        with self._connection.calls() as client:
            return [self._state(attrs) for attrs in self._containers.all(client, project_id)]

    def prune(self, project_id: str | None = None, *, older_than: float = 0.0) -> list[str]:
        """Remove the containers of ended services (and their anonymous volumes).

        Parameters
        ----------
        project_id : str | None
            Only this project's services; `None` prunes every service of this instance.
        older_than : float
            Only services that ended at least this many seconds ago.

        Returns
        -------
        list[str]
            The ids of the removed services; `status()` no longer knows them.
        """
        with self._connection.calls() as client:
            removed = [
                self._state(a) for a in self._containers.prune(client, project_id, older_than)
            ]
        for state in removed:
            _log.info(
                "project %s: removed the container of %s (%s)",
                state.project_id, state.service_id, state.status,
            )  # fmt: skip
        return [state.service_id for state in removed]

    def clusters(self) -> list[ClusterInfo]:
        host = self._connection.host()
        return [ClusterInfo(cluster_id=CLUSTER, name=CLUSTER, nodes=[host.name])]

    def nodes(self) -> list[NodeInfo]:
        host = self._connection.refresh_host()
        return [
            NodeInfo(
                node_id=host.host_id, name=host.name, cluster=CLUSTER, platform=host.platform,
                vcpus=host.vcpus, memory_mb=host.memory_mb,
            )
        ]  # fmt: skip

    def health(self) -> OrchestratorHealth:
        url = self._connection.display_url
        try:
            host = self._connection.refresh_host()
            with self._connection.calls() as client:
                self._check_network(client)
                running = self._containers.count_running(client)
        except OrchestratorError as e:
            return OrchestratorHealth(ok=False, message=str(e))
        except Exception as e:  # health never raises: report whatever went wrong
            return OrchestratorHealth(ok=False, message=f"the Docker daemon at {url}: {e!r}")
        message = (
            f"docker {host.server_version} at {url} on {host.name} ({host.platform}): "
            f"{running} running service(s) of instance {self._containers.instance}"
        )
        return OrchestratorHealth(ok=True, message=message)

    def close(self) -> None:
        """Close the connection to the daemon; containers keep running (see the module doc)."""
        self._connection.close()

    def _state(self, attrs: dict[str, Any]) -> ServiceState:
        node = self._connection.host().name
        return container_state(attrs, self._containers.labels, cluster=CLUSTER, node=node)

    def _check_placement(self, spec: ServiceSpec, host: DockerHost) -> None:
        cluster, node = spec.placement.cluster, spec.placement.node
        if cluster not in (None, CLUSTER):
            raise DeployError(f"unknown cluster {cluster!r}: the docker backend has {CLUSTER!r}")
        if node not in (None, host.name, host.host_id):
            raise DeployError(f"unknown node {node!r}: the Docker host is {host.name!r}")
        if spec.resources.storage_mb or spec.placement.required_addon:
            _log.debug("project %s: storage_mb and required_addon are ignored", spec.project_id)

    def _check_network(self, client: Any) -> None:
        if self._network_mode == HOST_NETWORK:
            return
        try:
            client.inspect_network(self._network_mode)
        except docker.errors.NotFound as e:
            raise DeployError(
                f"Docker network {self._network_mode!r} does not exist: create it with "
                f"`docker network create {self._network_mode}`"
            ) from e

    def _collect_garbage(self) -> None:
        """Prune services ended longer than `retention` ago, at most every ten minutes."""
        with self._lock:
            if self._retention is None or time.monotonic() < self._next_collection:
                return
            self._next_collection = time.monotonic() + _COLLECT_INTERVAL
        try:
            self.prune(older_than=self._retention)
        except OrchestratorError as e:
            instance = self._containers.instance
            _log.warning("removing old containers of instance %s failed: %s", instance, e)
