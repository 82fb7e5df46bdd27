"""One service of the `local` backend: its process, its record and its state transitions."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen

from flops_core.logs import get_logger
from flops_manager.orchestrators import local_process
from flops_manager.orchestrators.local_record import ServiceRecord, save_record
from flops_manager.orchestrators.orchestrator import DeployError, ServiceState, ServiceStatus
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = ["LocalService"]

_log = get_logger("manager.orchestrator")

Backoff = Callable[[int], float]
"""Seconds to wait before restart number `n + 1`, given the `n` restarts done so far."""


def _now() -> datetime:
    return datetime.now(UTC)


class LocalService:
    """A service's process and record; every call is made under the orchestrator's lock.

    Parameters
    ----------
    record : ServiceRecord
        Its persisted state, updated in place and saved on every change.
    state_dir : pathlib.Path
        Where records are saved.
    spec, argv, env, cwd
        What to (re)start; `None` for a service adopted from a record, which is never
        (re)started by this manager.
    memory_limit_bytes : int | None
        `RLIMIT_AS` of the process, if enforced.
    """

    def __init__(
        self,
        record: ServiceRecord,
        state_dir: Path,
        *,
        spec: ServiceSpec | None = None,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        memory_limit_bytes: int | None = None,
    ) -> None:
        self.record = record
        self._state_dir = state_dir
        self._spec = spec
        self._argv = argv or []
        self._env = env or {}
        self._cwd = cwd
        self._memory_limit_bytes = memory_limit_bytes
        self._process: Popen[bytes] | None = None
        self._restart_at: float | None = None
        self._stopping = False

    @classmethod
    def from_record(cls, record: ServiceRecord, state_dir: Path) -> LocalService:
        """Adopt a service a previous manager started: running if its process still lives."""
        service = cls(record, state_dir)
        if not record.status.terminal:
            if service._adopted_process_alive():
                record.status = ServiceStatus.RUNNING
                record.message = (
                    f"adopted after a manager restart, running (pid {record.pid}); "
                    "it will not be restarted and its exit code will not be known"
                )
                _log.info(
                    "project %s: adopted service %s (pid %s)",
                    record.project_id,
                    record.service_id,
                    record.pid,
                )
            else:
                service._ended_unobserved("ended while no manager supervised it", finished=None)
            service.save()
        return service

    @property
    def active(self) -> bool:
        """Whether the service has not reached a terminal status."""
        return not self.record.status.terminal

    @property
    def process_group(self) -> int | None:
        """The process group to signal, or `None` if no process of it runs (or may run)."""
        if self._process is None and self._spec is not None:
            return None
        return self.record.pgid

    def state(self) -> ServiceState:
        """Return the public state."""
        return self.record.to_state(running=self.record.status is ServiceStatus.RUNNING)

    def save(self) -> None:
        """Write the record; a failure is logged, never raised (the state in memory is right)."""
        try:
            save_record(self.record, self._state_dir)
        except OSError as e:
            _log.warning(
                "project %s: cannot save the record of %s: %s",
                self.record.project_id,
                self.record.service_id,
                e,
            )

    def spawn(self) -> None:
        """Start the process. Raises `DeployError` if it cannot be executed."""
        if self._spec is None or self._cwd is None:
            raise DeployError(f"service {self.record.service_id} was adopted; it cannot restart")
        record = self.record
        try:
            process = local_process.spawn_process(
                self._argv,
                env=self._env,
                cwd=self._cwd,
                log_path=record.log_path,
                memory_limit_bytes=self._memory_limit_bytes,
            )
        except OSError as e:
            raise DeployError(f"cannot start {self._argv[0]}: {e.strerror or e}") from e
        identity = local_process.identity_of(process.pid)
        self._process = process
        record.pid = record.pgid = process.pid
        record.boot_id = identity.boot_id if identity else None
        record.start_ticks = identity.start_ticks if identity else None
        record.status, record.exit_code = ServiceStatus.RUNNING, None
        record.started_at, record.finished_at = _now(), None
        record.message = f"running (pid {process.pid})"
        self.save()

    def check(self, backoff: Backoff) -> None:
        """One supervisor step: notice an exit, or start a restart that is due."""
        if self._stopping or not self.active:
            return
        if self._process is not None:
            returncode = self._process.poll()
            if returncode is not None:
                self._exited(returncode, backoff)
        elif self._spec is None:
            if not self._adopted_process_alive():
                self._ended_unobserved("ended after it was adopted", finished=_now())
                self.save()
        elif self._restart_at is not None and time.monotonic() >= self._restart_at:
            self._restart()

    def begin_stop(self) -> bool:
        """Stop supervising the service for an undeploy; return whether there is anything to stop.

        A service that already ended keeps its terminal status (`False`). One whose process
        ended unnoticed gets that exit recorded first.
        """
        if self._process is not None and (returncode := self._process.poll()) is not None:
            self._exited(returncode, backoff=lambda _: 0.0)
        elif self._spec is None and self.active and not self._adopted_process_alive():
            self._ended_unobserved("ended after it was adopted", finished=_now())
            self.save()
        if not self.active:
            return False
        self._stopping, self._restart_at = True, None
        return True

    def reap(self) -> None:
        """Collect the exit of our child process, if it ended, so it is no zombie."""
        if self._process is not None:
            self._process.poll()

    def finish_stop(self, how: str) -> None:
        """Record that the undeploy is done; `how` says how it ended, for the message."""
        record = self.record
        returncode = self._process.poll() if self._process is not None else None
        self._process = None
        record.status, record.finished_at = ServiceStatus.STOPPED, _now()
        record.exit_code = None if returncode is None else local_process.exit_code_of(returncode)
        record.message = f"undeployed: {how}"
        self.save()
        _log.info("project %s: service %s %s", record.project_id, record.service_id, how)

    def _adopted_process_alive(self) -> bool:
        identity = self.record.identity
        pid = self.record.pid
        return (
            pid is not None
            and identity is not None
            and local_process.is_same_process(pid, identity)
        )

    def _ended_unobserved(self, what: str, finished: datetime | None) -> None:
        record = self.record
        if finished is not None and record.pgid is not None:
            local_process.signal_group(record.pgid, signal.SIGKILL)  # what the leader left
        record.status, record.exit_code, record.finished_at = ServiceStatus.FAILED, None, finished
        record.message = f"{what}: its exit code is unknown (it was not this manager's child)"
        _log.warning("project %s: service %s %s", record.project_id, record.service_id, what)

    def _exited(self, returncode: int, backoff: Backoff) -> None:
        record, spec = self.record, self._spec
        assert spec is not None
        code = local_process.exit_code_of(returncode)
        self._process = None
        if record.pgid is not None:  # a container ends with its main process: so do we
            local_process.signal_group(record.pgid, signal.SIGKILL)
        record.exit_code, record.finished_at = code, _now()
        policy = spec.restart
        if code == 0:
            record.status, record.message = ServiceStatus.COMPLETED, "exited with code 0"
        elif spec.one_shot or policy.policy == "never":
            record.status, record.message = ServiceStatus.FAILED, f"exited with code {code}"
        elif record.restarts >= policy.max_restarts:
            record.status = ServiceStatus.FAILED
            record.message = f"exited with code {code}; gave up after {record.restarts} restarts"
        else:
            delay = backoff(record.restarts)
            self._restart_at = time.monotonic() + delay
            record.status = ServiceStatus.PENDING
            record.message = (
                f"exited with code {code}; restart {record.restarts + 1} of "
                f"{policy.max_restarts} in {delay:.2f} s"
            )
        log = _log.info if code == 0 else _log.warning
        log("project %s: service %s %s", record.project_id, record.service_id, record.message)
        self.save()

    def _restart(self) -> None:
        record = self.record
        assert self._spec is not None
        self._restart_at = None
        record.restarts += 1
        marker = f"--- flops: restart {record.restarts} of {self._spec.restart.max_restarts} ---"
        try:
            with record.log_path.open("a") as log:
                log.write(marker + "\n")
            self.spawn()
        except (DeployError, OSError) as e:
            record.status, record.finished_at = ServiceStatus.FAILED, _now()
            record.message = f"restart {record.restarts} failed: {e}"
            _log.warning("project %s: service %s %s", record.project_id, record.service_id, e)
            self.save()
