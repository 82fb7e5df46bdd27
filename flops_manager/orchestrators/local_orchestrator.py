"""The `local` backend: services are child processes of the manager on this machine.

Design. Each service is one child process started in a new session, so it leads a process
group that holds everything it spawns; signals go to the whole group, and undeploy returns
only when no live member is left (SIGTERM to the group, `timeout`, then SIGKILL). Output goes
to `state_dir/<service_id>/service.log`. The environment is built, not inherited: only the
manager's `PATH`, `HOME`, `LANG`, `TMPDIR`, `SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE`
(`PASSTHROUGH_VARIABLES`), FLOps defaults (no Flower telemetry, unbuffered Python, BLAS threads
from `resources.vcpus`) and `spec.env`, so the manager's own secrets never reach user code.

One supervisor thread polls every service under one lock. It records exit codes, kills what a
finished service left in its group (a container, too, ends with its main process), ends
one-shot services as `completed` or `failed` by exit code, and restarts other services under
policy `on_failure` after an exponential backoff with jitter until `max_restarts`, then marks
them `failed`. A non-one-shot service that exits with 0 is `completed` (as Docker's
`on-failure`).

Each change of state is written to a small JSON record (`local_record.py`). A new
`LocalOrchestrator` on the same `state_dir` (a restarted manager) loads the records and adopts
the services whose process still runs, recognised by boot id and process start time so that a
reused pid is never signalled. Adopted services are watched and can be undeployed, but they
are not restarted (the spec, with its secrets, is not stored) and their exit codes are
unknown, since they are no longer this process's children.

`resources.memory_mb` becomes `RLIMIT_AS` only with `enforce_memory_limit=True`: that limit
counts reserved virtual memory, which numeric libraries (OpenBLAS, PyTorch, CUDA) reserve far
beyond what they use, so it kills healthy learners; it also needs `preexec_fn`, which is not
safe in a process with threads. `image`, `privileged`, `storage_mb` and `required_addon` are
ignored; ports are not remapped (a `host_port` must equal its `container_port`).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from flops_core.logs import get_logger
from flops_manager.orchestrators import local_process
from flops_manager.orchestrators.local_record import (
    LOG_FILE,
    ServiceRecord,
    acquire_state_lock,
    load_records,
    tail_lines,
)
from flops_manager.orchestrators.local_service import LocalService
from flops_manager.orchestrators.local_topology import LocalTopology
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

__all__ = ["LocalOrchestrator"]

_log = get_logger("manager.orchestrator")


class LocalOrchestrator(Orchestrator):
    """Run services as supervised child processes on this machine (no containers).

    Parameters
    ----------
    state_dir : pathlib.Path
        Logs and records of the services; one live orchestrator per directory at a time.
    clusters : Mapping[str, Sequence[str]] | None
        Cluster names and their node names (all of them are this machine); by default one
        cluster `local` with one node named after the host.
    base_env : Mapping[str, str] | None
        The environment every service starts from; by default the `PASSTHROUGH_VARIABLES`
        of `os.environ` that are set (`PATH`, `HOME`, `LANG`, `TMPDIR`, CA bundles).
    enforce_memory_limit : bool
        Apply `resources.memory_mb` as `RLIMIT_AS` (off by default, see the module docstring).
    restart_backoff, restart_backoff_max : float
        Seconds before the first restart, doubling per restart up to the maximum; each delay
        is drawn from its upper half (jitter).
    poll_interval : float
        Seconds between two supervisor checks.

    Raises
    ------
    OrchestratorUnavailableError
        Another live orchestrator uses `state_dir`.
    """

    kind = "local"
    capabilities = Capabilities(simulates_clusters=True)

    def __init__(
        self,
        state_dir: Path,
        *,
        clusters: Mapping[str, Sequence[str]] | None = None,
        base_env: Mapping[str, str] | None = None,
        enforce_memory_limit: bool = False,
        restart_backoff: float = 1.0,
        restart_backoff_max: float = 30.0,
        poll_interval: float = 0.1,
    ) -> None:
        self._topology = LocalTopology(clusters)
        self._state_dir = Path(state_dir)
        self._state_dir.mkdir(parents=True, exist_ok=True)
        if base_env is None:
            base_env = local_process.passthrough_environment(os.environ)
        self._base_env = dict(base_env)
        self._enforce_memory_limit = enforce_memory_limit
        self._backoff_base, self._backoff_max = restart_backoff, restart_backoff_max
        self._poll_interval = poll_interval
        self._random = random.Random()
        self._lock = threading.RLock()
        self._closed = False
        self._state_lock = acquire_state_lock(self._state_dir)
        self._services = {
            record.service_id: LocalService.from_record(record, self._state_dir)
            for record in load_records(self._state_dir)
        }
        self._stop = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name="flops-local-supervisor", daemon=True
        )
        self._supervisor.start()

    def deploy(self, spec: ServiceSpec) -> str:
        cluster, node = self._topology.place(spec)
        self._check_runnable(spec)
        service_id = f"{spec.name.lower()}-{uuid.uuid4().hex[:12]}"
        service_dir = self._state_dir / service_id
        env = local_process.service_environment(spec, self._base_env)
        cwd = spec.working_dir or service_dir
        record = ServiceRecord(
            service_id=service_id,
            name=spec.name,
            project_id=spec.project_id,
            role=spec.role,
            one_shot=spec.one_shot,
            cluster=cluster,
            node=node,
            addresses=[f"127.0.0.1:{port.published_port}" for port in spec.ports],
            log_path=service_dir / LOG_FILE,
            deployed_at=datetime.now(UTC),
        )
        memory_mb = spec.resources.memory_mb if self._enforce_memory_limit else None
        _log.debug("project %s: deploying %r", spec.project_id, spec)
        with self._lock:
            if self._closed:
                raise OrchestratorError("the local orchestrator is closed")
            service_dir.mkdir()
            try:
                if not cwd.is_dir():
                    raise DeployError(f"working directory {cwd} does not exist")
                service = LocalService(
                    record,
                    self._state_dir,
                    spec=spec,
                    argv=local_process.resolve_command(spec, env, cwd),
                    env=env,
                    cwd=cwd,
                    memory_limit_bytes=memory_mb * 2**20 if memory_mb else None,
                )
                service.spawn()
            except DeployError as e:
                shutil.rmtree(service_dir, ignore_errors=True)
                _log.warning("project %s: cannot deploy %s: %s", spec.project_id, spec.name, e)
                raise
            self._services[service_id] = service
        pid = record.pid
        _log.info(
            "project %s: deployed %s as %s (pid %s)", spec.project_id, spec.name, service_id, pid
        )
        return service_id

    def status(self, service_id: str) -> ServiceState:
        with self._lock:
            return self._get(service_id).state()

    def logs(self, service_id: str, tail: int | None = None) -> list[str]:
        with self._lock:
            log_path = self._get(service_id).record.log_path
        return tail_lines(log_path, tail)

    def undeploy(self, service_id: str, timeout: float = 10.0) -> None:
        self._stop_services([service_id], timeout)

    def list_services(self, project_id: str | None = None) -> list[ServiceState]:
        with self._lock:
            return [
                service.state()
                for service in self._services.values()
                if project_id is None or service.record.project_id == project_id
            ]

    def clusters(self) -> list[ClusterInfo]:
        return self._topology.clusters()

    def nodes(self) -> list[NodeInfo]:
        return self._topology.nodes()

    def health(self) -> OrchestratorHealth:
        if self._closed:
            return OrchestratorHealth(ok=False, message="the local orchestrator is closed")
        if not self._supervisor.is_alive():
            return OrchestratorHealth(ok=False, message="the local supervisor thread has died")
        if not os.access(self._state_dir, os.W_OK):
            message = f"state directory {self._state_dir} is not writable"
            return OrchestratorHealth(ok=False, message=message)
        with self._lock:
            active = sum(service.active for service in self._services.values())
        return OrchestratorHealth(ok=True, message=f"local: {active} active service(s)")

    def close(self) -> None:
        """Undeploy every active service (started or adopted), then stop supervising."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            active = [i for i, service in self._services.items() if service.active]
        try:
            self._stop_services(active, timeout=10.0)
        finally:
            self._stop.set()
            self._supervisor.join()
            self._state_lock.close()

    def _get(self, service_id: str) -> LocalService:
        service = self._services.get(service_id)
        if service is None:
            raise ServiceNotFoundError(f"no service {service_id!r} in the local orchestrator")
        return service

    @staticmethod
    def _check_runnable(spec: ServiceSpec) -> None:
        if any(port.host_port not in (None, port.container_port) for port in spec.ports):
            raise DeployError("the local backend cannot remap ports: use host_port=container_port")
        ignored = {
            "image": spec.image,
            "privileged": spec.privileged,
            "storage_mb": spec.resources.storage_mb,
            "required_addon": spec.placement.required_addon,
        }
        if names := [name for name, value in ignored.items() if value]:
            _log.debug("project %s: local backend ignores %s", spec.project_id, ", ".join(names))

    def _backoff(self, restarts: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * 2.0**restarts)
        return delay * self._random.uniform(0.5, 1.0)

    def _supervise(self) -> None:
        while not self._stop.wait(self._poll_interval):
            with self._lock:
                for service in list(self._services.values()):
                    try:
                        service.check(self._backoff)
                    except Exception:  # the supervisor must outlive any single bad service
                        record = service.record
                        _log.exception(
                            "project %s: supervising %s failed",
                            record.project_id,
                            record.service_id,
                        )

    def _stop_services(self, service_ids: list[str], timeout: float) -> None:
        """Stop the services' process groups together (see `terminate_groups`)."""
        with self._lock:
            found = [self._services.get(service_id) for service_id in service_ids]
            targets = [service for service in found if service is not None and service.begin_stop()]
            groups = {service: service.process_group for service in targets}
        running = [service for service in targets if groups[service] is not None]
        outcomes = local_process.terminate_groups(
            [(groups[service] or 0, service.reap) for service in running], timeout
        )
        how = dict(zip(running, outcomes, strict=True))
        with self._lock:
            for service in targets:
                outcome = how.get(service, "stopped before its (re)start")
                if outcome is not None:
                    service.finish_stop(outcome)
        survivors = [service.record.service_id for service in running if how[service] is None]
        if survivors:
            raise OrchestratorUnavailableError(
                f"processes of {survivors} survived SIGKILL; undeploy them again"
            )
