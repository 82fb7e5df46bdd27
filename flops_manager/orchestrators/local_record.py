"""What the `local` backend keeps on disk per service: a small JSON record and the log file.

`state_dir/<service_id>/service.json` holds the process identity and the last known state
(never the spec's environment, which may hold secrets), so that a restarted manager can report
on and undeploy services it did not start. `state_dir/<service_id>/service.log` holds the
service's combined stdout and stderr.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ValidationError

from flops_core.logs import get_logger
from flops_manager.orchestrators.local_process import ProcessIdentity
from flops_manager.orchestrators.orchestrator import (
    OrchestratorUnavailableError,
    ServiceState,
    ServiceStatus,
)

__all__ = [
    "LOG_FILE",
    "RECORD_FILE",
    "ServiceRecord",
    "acquire_state_lock",
    "load_records",
    "save_record",
    "tail_lines",
]

RECORD_FILE = "service.json"
LOG_FILE = "service.log"
_LOCK_FILE = ".lock"
_TAIL_BLOCK = 64 * 1024

_log = get_logger("manager.orchestrator")


class ServiceRecord(BaseModel):
    """The persisted state of one local service (mutable: the backend updates it in place)."""

    version: Literal[1] = 1
    service_id: str
    name: str
    project_id: str
    role: str
    one_shot: bool
    cluster: str
    node: str
    addresses: list[str]
    log_path: Path
    deployed_at: datetime
    status: ServiceStatus = ServiceStatus.PENDING
    pid: int | None = None
    pgid: int | None = None
    boot_id: str | None = None
    start_ticks: int | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restarts: int = 0
    message: str = ""

    @property
    def identity(self) -> ProcessIdentity | None:
        """The identity of the recorded process, if it was known when it started."""
        if self.boot_id is None or self.start_ticks is None:
            return None
        return ProcessIdentity(boot_id=self.boot_id, start_ticks=self.start_ticks)

    def to_state(self, *, running: bool) -> ServiceState:
        """Return the public state; `running` says whether `pid` is a live process."""
        return ServiceState(
            service_id=self.service_id,
            name=self.name,
            project_id=self.project_id,
            role=self.role,
            status=self.status,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            restarts=self.restarts,
            addresses=list(self.addresses),
            pids=[self.pid] if running and self.pid is not None else [],
            cluster=self.cluster,
            node=self.node,
            message=self.message,
        )


def save_record(record: ServiceRecord, state_dir: Path) -> None:
    """Write the record atomically to `state_dir/<service_id>/service.json`."""
    path = state_dir / record.service_id / RECORD_FILE
    partial = path.with_suffix(".json.tmp")
    partial.write_text(record.model_dump_json(indent=2))
    os.replace(partial, path)


def load_records(state_dir: Path) -> list[ServiceRecord]:
    """Return the records under `state_dir`, oldest first; unreadable ones are logged, skipped."""
    records: list[ServiceRecord] = []
    for path in sorted(state_dir.glob(f"*/{RECORD_FILE}")):
        try:
            records.append(ServiceRecord.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as e:
            _log.warning("skipping unreadable service record %s: %s", path, e)
    return sorted(records, key=lambda record: record.deployed_at)


def acquire_state_lock(state_dir: Path) -> IO[str]:
    """Lock `state_dir` for this process; the lock ends with the returned file (or the process).

    Raises
    ------
    OrchestratorUnavailableError
        Another live orchestrator uses the same `state_dir`.
    """
    lock = (state_dir / _LOCK_FILE).open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock.close()
        raise OrchestratorUnavailableError(
            f"state directory {state_dir} is in use by another local orchestrator"
        ) from e
    return lock


def tail_lines(path: Path, tail: int | None) -> list[str]:
    """Return the last `tail` lines of a text file (all for `None`), without line endings."""
    if tail is not None and tail < 0:
        raise ValueError("tail must be >= 0")
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return []
    with file:
        if tail is None:
            data = file.read()
        else:
            position = file.seek(0, os.SEEK_END)
            blocks: list[bytes] = []
            newlines = 0
            while position > 0 and newlines <= tail:  # one newline more than lines wanted
                size = min(_TAIL_BLOCK, position)
                position -= size
                file.seek(position)
                blocks.append(file.read(size))
                newlines += blocks[-1].count(b"\n")
            data = b"".join(reversed(blocks))
    lines = [line.rstrip("\r") for line in data.decode("utf-8", "replace").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if tail is None:
        return lines
    return lines[-tail:] if tail else []
