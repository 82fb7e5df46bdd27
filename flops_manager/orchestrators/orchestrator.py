"""The one interface the manager uses to run services: `Orchestrator`, its models and errors."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from flops_core.closing import Closing
from flops_core.errors import FlopsError, TemporaryError
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = [
    "Capabilities",
    "ClusterInfo",
    "DeployError",
    "NodeInfo",
    "Orchestrator",
    "OrchestratorError",
    "OrchestratorHealth",
    "OrchestratorUnavailableError",
    "ServiceNotFoundError",
    "ServiceSpec",
    "ServiceState",
    "ServiceStatus",
]


class OrchestratorError(FlopsError):
    """Base of every orchestrator failure; `retryable` says whether a retry may succeed."""


class ServiceNotFoundError(OrchestratorError):
    """Raised when a service id is unknown to the orchestrator (permanent)."""


class DeployError(OrchestratorError):
    """Raised when a spec cannot be deployed as given, e.g. command not found (permanent)."""


class OrchestratorUnavailableError(OrchestratorError, TemporaryError):
    """Raised when the orchestrator cannot be reached or is busy; retry with backoff."""


class ServiceStatus(StrEnum):
    """Where a service is in its life; backends map their own statuses onto these.

    Oakestra: `REQUESTED`, `CLUSTER_SCHEDULED`, `NODE_SCHEDULED` and unknown strings are
    `pending`; `CREATING`, `CREATED`, `INSTANTIATION` are `starting`; `RUNNING` is `running`;
    `COMPLETED` is `completed`; `FAILED`, `DEAD` and the negative scheduling results are
    `failed`; `UNDEPLOYED` is `stopped`. Docker: `created` is `starting`, `restarting` is
    `pending`, `exited` is `completed` or `failed` by exit code.
    """

    PENDING = "pending"
    """Accepted, not yet placed or started; also while waiting to be restarted."""
    STARTING = "starting"
    """Placed; its process or container is being created."""
    RUNNING = "running"
    COMPLETED = "completed"
    """Exited with code 0 by itself (the normal end of a one-shot service)."""
    FAILED = "failed"
    """Exited with another code (after its restarts), or could not be started or observed."""
    STOPPED = "stopped"
    """Undeployed while it was still pending, starting or running."""

    @property
    def terminal(self) -> bool:
        """Whether the status can no longer change."""
        return self in (ServiceStatus.COMPLETED, ServiceStatus.FAILED, ServiceStatus.STOPPED)


class ServiceState(BaseModel):
    """What an orchestrator knows about one deployed service, at one moment."""

    model_config = ConfigDict(frozen=True)

    service_id: str
    name: str
    project_id: str
    role: str
    status: ServiceStatus
    exit_code: int | None = Field(
        default=None, description="Last exit code; 128+N after signal N; `None` if unknown."
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restarts: int = 0
    addresses: list[str] = Field(default_factory=list, description="`host:port` per port.")
    pids: list[int] = Field(default_factory=list, description="Host processes, if any.")
    cluster: str | None = None
    node: str | None = None
    message: str = Field(default="", description="Why it is in this status, for humans.")

    @property
    def address(self) -> str | None:
        """The first address, or `None` if the service publishes no port."""
        return self.addresses[0] if self.addresses else None


class ClusterInfo(BaseModel):
    """A cluster services can be placed on."""

    model_config = ConfigDict(frozen=True)

    cluster_id: str
    name: str
    active: bool = True
    nodes: list[str] = Field(default_factory=list, description="Names of its nodes.")


class NodeInfo(BaseModel):
    """A worker node; `None` fields are not known to the orchestrator."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    name: str
    cluster: str
    active: bool = True
    platform: str | None = Field(default=None, description="e.g. `linux/arm64`.")
    vcpus: float | None = None
    memory_mb: int | None = None
    addons: list[str] = Field(default_factory=list)


class OrchestratorHealth(BaseModel):
    """Whether the orchestrator can take work, and why not."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    message: str


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do: the generic lifecycle asks these, never the backend's name.

    Each backend declares one value (`Orchestrator.capabilities`); the defaults describe a
    backend whose services run on this machine and are reached at `127.0.0.1`.
    """

    services_on_other_hosts: bool = False
    """Services may run on hosts other than the manager's: they listen on every interface
    and publish their ports (else they listen on `127.0.0.1`, published or not)."""
    address_after_start: bool = False
    """A service's address is known only once it runs: ask `status()` for it (else it is
    `127.0.0.1:<port>` of this machine)."""
    schedules_after_deploy: bool = False
    """`deploy()` only registers a service and a scheduler places it later, or fails to:
    wait until each service runs before counting on it."""
    needs_image_names: bool = False
    """Every spec names an image, also one that runs a local Python environment (an
    Oakestra SLA always names one)."""
    reports_clusters: bool = False
    """`clusters()` are real clusters of its own (Oakestra's active ones), where
    hierarchical FL trains; configured cluster names do not apply."""
    simulates_clusters: bool = False
    """With no clusters configured, hierarchical FL may make clusters of the embedded
    default's simulated nodes; every service of them runs on this machine."""
    places_on_nodes: bool = False
    """Learners go to the registered nodes that hold the project's data, pinned by (cluster,
    node), and read that node's data server at its address (else learner `i` reads the
    embedded default's data server `i` and the backend places it where it likes)."""


class Orchestrator(Closing, abc.ABC):
    """Deploys `ServiceSpec`s and reports on them; every backend implements this.

    Implementations are thread-safe. Usable as a context manager that calls `close()`.
    """

    kind: ClassVar[str]
    """The name `create_orchestrator` knows this backend by; for messages and records only."""
    capabilities: ClassVar[Capabilities] = Capabilities()
    """What this backend can do; the lifecycle decides by these, never by `kind`."""

    @abc.abstractmethod
    def deploy(self, spec: ServiceSpec) -> str:
        """Start a service; return as soon as the orchestrator has accepted it.

        Parameters
        ----------
        spec : ServiceSpec
            What to run. Fields a backend cannot honour are ignored only where this is
            documented by the backend; otherwise the spec is refused.

        Returns
        -------
        str
            The new service's id, unique within this orchestrator. The service may still be
            `pending` or `starting`: poll `status()`.

        Raises
        ------
        DeployError
            The spec cannot be deployed (bad placement, command or image not found, ...);
            retrying the same spec will fail again.
        OrchestratorUnavailableError
            The orchestrator cannot be reached now; nothing was deployed.
        """

    def deploy_many(self, specs: list[ServiceSpec]) -> list[str]:
        """Deploy several services of one project; their ids, in order.

        Backends that can register services together (Oakestra: one request per batch)
        override this; the default deploys one after the other. If a deploy fails, the
        services deployed before it keep running: undeploy them (the project runner does).
        """
        return [self.deploy(spec) for spec in specs]

    @abc.abstractmethod
    def status(self, service_id: str) -> ServiceState:
        """Return the current state of a service.

        Parameters
        ----------
        service_id : str
            An id returned by `deploy()` (or, after a restart, known to the backend).

        Returns
        -------
        ServiceState
            Terminal states (`completed`, `failed`, `stopped`) stay queryable.

        Raises
        ------
        ServiceNotFoundError
            The id is unknown.
        OrchestratorUnavailableError
            The orchestrator cannot be reached now.
        """

    @abc.abstractmethod
    def logs(self, service_id: str, tail: int | None = None) -> list[str]:
        """Return the service's combined stdout and stderr lines, oldest first.

        Parameters
        ----------
        service_id : str
            An id returned by `deploy()`.
        tail : int | None
            Only the last `tail` lines; `None` returns all the backend keeps.

        Returns
        -------
        list[str]
            Lines without their line endings; empty if the backend keeps no logs.

        Raises
        ------
        ServiceNotFoundError
            The id is unknown.
        OrchestratorUnavailableError
            The orchestrator cannot be reached now.
        """

    @abc.abstractmethod
    def undeploy(self, service_id: str, timeout: float = 10.0) -> None:
        """Stop a service and every process it started; idempotent.

        The service is asked to stop (SIGTERM or equivalent) and killed after `timeout`
        seconds. Afterwards its status is `stopped`, or the terminal status it had already
        reached. Undeploying an unknown or already stopped id does nothing.

        Parameters
        ----------
        service_id : str
            An id returned by `deploy()`.
        timeout : float
            Seconds between the polite stop request and the kill.

        Raises
        ------
        OrchestratorUnavailableError
            The orchestrator cannot be reached, or the service did not go away; retry.
        """

    @abc.abstractmethod
    def list_services(self, project_id: str | None = None) -> list[ServiceState]:
        """Return the states of the services this orchestrator knows, oldest first.

        Parameters
        ----------
        project_id : str | None
            Only the services of this project; `None` lists all.
        """

    @abc.abstractmethod
    def clusters(self) -> list[ClusterInfo]:
        """Return the clusters services can be placed on."""

    @abc.abstractmethod
    def nodes(self) -> list[NodeInfo]:
        """Return the worker nodes of all clusters."""

    @abc.abstractmethod
    def health(self) -> OrchestratorHealth:
        """Return whether the orchestrator can take work; never raises."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the orchestrator's resources; idempotent.

        Whether services outlive `close()` is part of each backend's documentation:
        `local` undeploys every service it supervises.
        """
