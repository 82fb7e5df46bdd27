"""The `oakestra` backend: services deployed through the Oakestra root orchestrator's REST API.

Each project is one Oakestra application (`application_name`), created with the first
services the project deploys in one `POST /api/application/`; later services are appended
with `POST /api/service/`. Registering does not deploy: each service then gets one instance
with `POST /api/service/{id}/instance`, which answers 200 before anything happens, and its
status is polled with `GET /api/service/{id}`. Undeploying is `DELETE /api/service/{id}`; the
application is deleted when its last service is gone.

Statuses (`ServiceStatus` documents the mapping): the scheduler writes negative results such
as `NoActiveClusterWithCapacity` to the *service* and adds no instance; they end the service
as `failed` with an explanation. Oakestra's clusters re-deploy failed instances by themselves,
so a status can go from `FAILED` back to `REQUESTED`; this backend keeps the first terminal
status it saw. Oakestra reports no exit codes (`exit_code` is `None`).

Addresses are the instance's `publicip` with the host side of the service's port mapping
(Oakestra's `host_port` field is the worker's node port, not the service's). Oakestra's root
API lists clusters but not nodes: `nodes()` is empty.

Spec fields Oakestra has no place for are ignored: `volumes` (Oakestra's volumes are CSI
volumes, not named ones), `working_dir`, `restart` (clusters restart failed instances by
their own rules) and `placement.required_addon` (the scheduler ignores addon constraints).
A spec with `environment_path` runs that environment's Python (`cmd[0]`), which only works
on workers that share this machine's file system.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from flops_core.logs import get_logger
from flops_manager.orchestrators.oakestra_client import OakestraClient, OakestraHTTPError
from flops_manager.orchestrators.oakestra_sla import application_name, application_sla
from flops_manager.orchestrators.oakestra_status import (
    NEGATIVE_SCHEDULING,
    map_status,
    object_id,
    read_service_document,
)
from flops_manager.orchestrators.orchestrator import (
    Capabilities,
    ClusterInfo,
    DeployError,
    NodeInfo,
    Orchestrator,
    OrchestratorError,
    OrchestratorHealth,
    ServiceNotFoundError,
    ServiceState,
    ServiceStatus,
)
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = ["NEGATIVE_SCHEDULING", "OakestraOrchestrator", "map_status"]

_log = get_logger("manager.oakestra")


@dataclass
class _Record:
    """What this backend remembers of a service it deployed."""

    spec: ServiceSpec
    app: str
    deployed_at: datetime
    state: ServiceState | None = None
    polled_at: float = 0.0
    logs: list[str] = field(default_factory=list)
    gone: bool = False


class OakestraOrchestrator(Orchestrator):
    """Deploy FLOps services through an Oakestra root orchestrator.

    Parameters
    ----------
    base_url : str
        The root's system manager API, e.g. `http://root:10000`.
    username, password : str
        The Oakestra account services are deployed as.
    namespace : str
        Oakestra namespace of the applications and services (`^[a-zA-Z0-9]{1,30}$`).
    retries, backoff_s : int, float
        Retries with exponential backoff on connection errors and 5xx answers.
    poll_s : float
        A service's status is fetched at most this often; calls in between reuse it.
    client : OakestraClient | None
        A ready client (tests); built from the other arguments otherwise.
    """

    kind: ClassVar[str] = "oakestra"
    capabilities: ClassVar[Capabilities] = Capabilities(
        services_on_other_hosts=True,
        address_after_start=True,
        schedules_after_deploy=True,
        needs_image_names=True,
        reports_clusters=True,
        places_on_nodes=True,
    )

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        namespace: str = "flops",
        retries: int = 4,
        backoff_s: float = 0.5,
        poll_s: float = 1.0,
        client: OakestraClient | None = None,
    ) -> None:
        self.client = client or OakestraClient(
            base_url, username=username, password=password, retries=retries, backoff_s=backoff_s
        )
        self.namespace = namespace
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._apps: dict[str, str] = {}  # project id -> Oakestra application id
        self._records: dict[str, _Record] = {}
        self._cluster_names: dict[str, str] = {}

    # -- deploying ------------------------------------------------------------------------

    def deploy(self, spec: ServiceSpec) -> str:
        """Register the service in its project's application and request one instance."""
        return self.deploy_many([spec])[0]

    def deploy_many(self, specs: list[ServiceSpec]) -> list[str]:
        """Register services of one project in one call, then request an instance of each."""
        if not specs:
            return []
        project_ids = {spec.project_id for spec in specs}
        if len(project_ids) != 1:
            raise DeployError("deploy_many takes the services of one project at a time")
        project_id = project_ids.pop()
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise DeployError(f"service names must be unique within a project: {names}")
        with self._lock:
            app_id = self._register(project_id, specs)
            by_name = self._service_ids(app_id)
            missing = [name for name in names if name not in by_name]
            if missing:
                raise DeployError(
                    f"Oakestra did not register the service(s) {', '.join(missing)} of "
                    f"application {application_name(project_id)}; it drops services its network "
                    "component rejects without saying so: check the root service manager's log"
                )
            ids = [by_name[name] for name in names]
            now = datetime.now(UTC)
            for spec, service_id in zip(specs, ids, strict=True):
                self._records[service_id] = _Record(spec=spec, app=app_id, deployed_at=now)
        for spec, service_id in zip(specs, ids, strict=True):
            self.client.request("POST", f"/api/service/{service_id}/instance")
            _log.info(
                "project=%s oakestra service %s (%s) registered as %s, instance requested",
                spec.project_id, spec.name, spec.role, service_id,
            )  # fmt: skip
        return ids

    def _register(self, project_id: str, specs: list[ServiceSpec]) -> str:
        """Create the project's application with `specs`, or append them to it; its id."""
        name = application_name(project_id)
        app_id = self._apps.get(project_id)
        if app_id is None:
            sla = application_sla(
                customer=self.client.username, name=name, namespace=self.namespace,
                specs=specs, description=f"FLOps project {project_id}",
            )  # fmt: skip
            try:
                reply = self.client.request("POST", "/api/application/", json_body=sla)
            except OakestraHTTPError as e:
                if e.status != 409:
                    raise _deploy_error(e, specs) from e
                # Left over from an earlier manager: append to it instead.
                found = self._find_application(self._list_applications(), name)
                if found is None:
                    raise DeployError(f"Oakestra says application {name} exists but does "
                                      "not list it") from e  # fmt: skip
                app_id = found[0]
                self._apps[project_id] = app_id
                return self._append(project_id, app_id, name, specs)
            app = self._find_application(reply, name)
            if app is None:
                raise DeployError(f"Oakestra's reply to creating application {name} does not "
                                  "contain it")  # fmt: skip
            app_id, registered = app
            self._apps[project_id] = app_id
            if registered != len(specs):
                raise DeployError(
                    f"Oakestra registered {registered} of the {len(specs)} services of "
                    f"application {name}; it drops services its network component rejects "
                    "without an error: check the root service manager's log"
                )
            return app_id
        return self._append(project_id, app_id, name, specs)

    def _append(self, project_id: str, app_id: str, name: str, specs: list[ServiceSpec]) -> str:
        sla = application_sla(
            customer=self.client.username, name=name, namespace=self.namespace, specs=specs,
            application_id=app_id,
        )  # fmt: skip
        try:
            reply = self.client.request("POST", "/api/service/", json_body=sla)
        except OakestraHTTPError as e:
            raise _deploy_error(e, specs) from e
        failed = reply.get("failed_services") if isinstance(reply, dict) else None
        if failed:
            names = ", ".join(str(item.get("service_name", item)) for item in failed)
            raise DeployError(f"Oakestra refused to add the service(s) {names} to {name}")
        return app_id

    def _find_application(self, reply: Any, name: str) -> tuple[str, int] | None:
        """The id and registered service count of application `name` in a list of apps."""
        apps = reply if isinstance(reply, list) else [reply] if isinstance(reply, dict) else []
        for app in apps:
            if not isinstance(app, dict):
                continue
            key = (app.get("application_name"), app.get("application_namespace"))
            if key != (name, self.namespace):
                continue
            app_id = object_id(app.get("applicationID") or app.get("_id"))
            return app_id, len(app.get("microservices") or [])
        return None

    def _list_applications(self) -> Any:
        user = self.client.request("GET", f"/api/user/{self.client.username}")
        user_id = object_id(user.get("_id")) if isinstance(user, dict) else ""
        return self.client.request("GET", f"/api/applications/{user_id}")

    def _service_ids(self, app_id: str) -> dict[str, str]:
        reply = self.client.request("GET", f"/api/services/{app_id}")
        services = reply if isinstance(reply, list) else []
        ids: dict[str, str] = {}
        for service in services:
            if not isinstance(service, dict):
                continue
            if service.get("applicationID") not in (None, app_id):
                continue  # older roots listed every app's services (oakestra#406)
            service_id = object_id(service.get("microserviceID") or service.get("_id"))
            ids[str(service.get("microservice_name"))] = service_id
        return ids

    # -- observing ------------------------------------------------------------------------

    def status(self, service_id: str) -> ServiceState:
        """The service's state, fetched at most every `poll_s` seconds."""
        with self._lock:
            record = self._records.get(service_id)
        if record is None:
            return self._state_of_unknown(service_id)
        now = time.monotonic()
        if record.state is not None and (
            record.state.status.terminal or record.gone or now - record.polled_at < self.poll_s
        ):
            return record.state
        try:
            doc = self.client.request("GET", f"/api/service/{service_id}")
        except OakestraHTTPError as e:
            if e.status != 404:
                raise
            doc = None
        with self._lock:
            record.polled_at = now
            if doc is None:
                record.gone = True
                previous = record.state
                status = previous.status if previous and previous.status.terminal else None
                record.state = self._state(
                    service_id, record, status or ServiceStatus.STOPPED, None,
                    "the service no longer exists in Oakestra",
                )  # fmt: skip
                return record.state
            record.state = self._from_document(service_id, record, doc)
            return record.state

    def _state_of_unknown(self, service_id: str) -> ServiceState:
        try:
            self.client.request("GET", f"/api/service/{service_id}")
        except OakestraHTTPError as e:
            raise ServiceNotFoundError(f"no Oakestra service {service_id}") from e
        raise ServiceNotFoundError(
            f"Oakestra service {service_id} was not deployed by this manager"
        )

    def _from_document(self, service_id: str, record: _Record, doc: Any) -> ServiceState:
        if not isinstance(doc, dict):
            raise OrchestratorError(f"unexpected reply for service {service_id}: {doc!r:.200}")
        report = read_service_document(doc)
        if report.logs is not None:
            record.logs = report.logs
        address = None
        if report.ip and record.spec.ports:
            address = f"{report.ip}:{record.spec.ports[0].published_port}"
        return self._state(
            service_id, record, report.status, address, report.message,
            cluster=self._cluster_name(report.cluster_id) if report.cluster_id else None,
            node=report.worker_id,
        )  # fmt: skip

    def _cluster_name(self, cluster_id: str) -> str:
        """A cluster's name from its id; the list of all clusters is fetched when unknown."""
        if cluster_id not in self._cluster_names:
            try:
                reply = self.client.request("GET", "/api/clusters/", authenticated=False)
            except OrchestratorError:
                return cluster_id
            for item in reply if isinstance(reply, list) else []:
                if isinstance(item, dict) and item.get("cluster_name"):
                    self._cluster_names[object_id(item.get("_id"))] = str(item["cluster_name"])
            # An id Oakestra does not list keeps its id as name, without asking again.
            self._cluster_names.setdefault(cluster_id, cluster_id)
        return self._cluster_names[cluster_id]

    def _state(
        self, service_id: str, record: _Record, status: ServiceStatus, address: str | None,
        message: str, *, cluster: str | None = None, node: str | None = None,
    ) -> ServiceState:  # fmt: skip
        previous = record.state
        if previous is not None and previous.status.terminal:
            return previous  # Oakestra re-deploys failed instances; the first end counts
        return ServiceState(
            service_id=service_id,
            name=record.spec.name,
            project_id=record.spec.project_id,
            role=record.spec.role,
            status=status,
            started_at=record.deployed_at,
            finished_at=datetime.now(UTC) if status.terminal else None,
            addresses=[address] if address else [],
            cluster=cluster or (previous.cluster if previous else None),
            # The node a service is pinned to, by name; else the worker Oakestra reports.
            node=record.spec.placement.node or node or (previous.node if previous else None),
            message=message,
        )

    def logs(self, service_id: str, tail: int | None = None) -> list[str]:
        """The last output lines Oakestra reported for the instance (often few or none)."""
        state = self.status(service_id)
        with self._lock:
            lines = list(self._records[service_id].logs)
        if not lines and state.message:
            lines = [state.message]
        return lines[-tail:] if tail else lines

    # -- undeploying ----------------------------------------------------------------------

    def undeploy(self, service_id: str, timeout: float = 10.0) -> None:
        """Delete the service (Oakestra stops its instances); the app goes with its last one."""
        with self._lock:
            record = self._records.get(service_id)
        if record is None:
            self._undeploy_unrecorded(service_id)
            return
        if record.gone:
            return
        try:
            self.client.request("GET", f"/api/service/{service_id}")
        except OakestraHTTPError as e:
            if e.status != 404:
                raise
        else:
            self.client.request("DELETE", f"/api/service/{service_id}")
        with self._lock:
            record.gone = True
            if record.state is None or not record.state.status.terminal:
                record.state = self._state(
                    service_id, record, ServiceStatus.STOPPED, None, "undeployed"
                )
            project_id = record.spec.project_id
            live = [r for r in self._records.values() if r.app == record.app and not r.gone]
            app_id = record.app if not live else None
            if app_id is not None and self._apps.get(project_id) == app_id:
                del self._apps[project_id]
        _log.info("project=%s oakestra service %s deleted", project_id, service_id)
        if app_id is not None:
            self._delete_application(project_id, app_id)

    def _undeploy_unrecorded(self, service_id: str) -> None:
        """Delete a service this manager did not deploy itself (it was restarted since).

        Oakestra keeps re-deploying failed instances, so a service left behind would run on
        forever. Its application is deleted as well once no service is left in it.
        """
        try:
            document = self.client.request("GET", f"/api/service/{service_id}")
        except OakestraHTTPError as e:
            if e.status == 404:  # not (or no longer) one of this user's services
                return
            raise
        document = document if isinstance(document, dict) else {}
        app_id = document.get("applicationID")
        project_id = str(document.get("app_name", "")).removeprefix("flops")  # for the log
        self.client.request("DELETE", f"/api/service/{service_id}")
        _log.info(
            "project=%s oakestra service %s deleted (deployed before a restart)",
            project_id, service_id,
        )  # fmt: skip
        if not app_id:
            return
        try:
            remaining = self.client.request("GET", f"/api/services/{app_id}")
        except OakestraHTTPError as e:
            if e.status == 404:  # the application is gone already
                return
            raise
        if not remaining:
            self._delete_application(project_id, str(app_id))

    def _delete_application(self, project_id: str, app_id: str) -> None:
        try:
            self.client.request("DELETE", f"/api/application/{app_id}")
        except OakestraHTTPError as e:
            if e.status != 501:  # 501: not found, i.e. already gone
                raise
        _log.info("project=%s oakestra application %s deleted", project_id, app_id)

    # -- the rest of the interface --------------------------------------------------------

    def list_services(self, project_id: str | None = None) -> list[ServiceState]:
        """The services this manager deployed through Oakestra, oldest first."""
        with self._lock:
            ids = [
                service_id
                for service_id, record in self._records.items()
                if project_id is None or record.spec.project_id == project_id
            ]
        return [self.status(service_id) for service_id in ids]

    def clusters(self) -> list[ClusterInfo]:
        """Oakestra's active clusters (those that reported within the last 30 s)."""
        reply = self.client.request("GET", "/api/clusters/active", authenticated=False)
        clusters = []
        for item in reply if isinstance(reply, list) else []:
            if not isinstance(item, dict):
                continue
            cluster_id = object_id(item.get("_id"))
            name = str(item.get("cluster_name") or cluster_id)
            clusters.append(
                ClusterInfo(cluster_id=cluster_id, name=name, active=bool(item.get("active", True)))
            )
        with self._lock:
            self._cluster_names.update({c.cluster_id: c.name for c in clusters})
        return clusters

    def nodes(self) -> list[NodeInfo]:
        """Always empty: Oakestra's root API does not list worker nodes."""
        return []

    def health(self) -> OrchestratorHealth:
        """Log in (or reuse the token) and count the active clusters; never raises."""
        try:
            # Unauthenticated and without retries first: an unreachable root fails fast.
            self.client.request("GET", "/api/clusters/", authenticated=False, retries=0)
            self.client.request("GET", f"/api/user/{self.client.username}", retries=0)
            active = len(self.clusters())
        except OrchestratorError as e:
            return OrchestratorHealth(ok=False, message=str(e))
        if not active:
            return OrchestratorHealth(
                ok=False,
                message=f"the Oakestra root at {self.client.base_url} has no active cluster: "
                "start a cluster orchestrator and a worker",
            )
        return OrchestratorHealth(
            ok=True, message=f"Oakestra root at {self.client.base_url}, {active} active clusters"
        )

    def close(self) -> None:
        """Close the HTTP client; services keep running in Oakestra."""
        self.client.close()


def _deploy_error(error: OakestraHTTPError, specs: list[ServiceSpec]) -> DeployError:
    names = ", ".join(spec.name for spec in specs)
    return DeployError(f"Oakestra refused the SLA of {names} (HTTP {error.status}): {error.detail}")
