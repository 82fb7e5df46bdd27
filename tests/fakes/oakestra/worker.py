"""The fake's schedulers and workers: instance status steps on a timer, processes on `local`.

Design. One engine thread owns a timer queue. `POST /api/service/<id>/instance` sets the
service to `REQUESTED` and queues the root scheduling; each step queues the next one
`step_delay_s` later: `CLUSTER_SCHEDULED` (the instance appears in `instance_list`),
`NODE_SCHEDULED` (worker, host ip and port known), `CREATING`, then the start of the process
(`RUNNING`). Between steps the thread polls the processes and turns their exits into `COMPLETED`
(one-shot, code 0), `DEAD` (code 0, not one-shot) or `FAILED`. Every step runs under the fake's
one lock and re-reads the service, so a service or instance deleted meanwhile ends its chain.

The "worker" is the manager's embedded runtime, `LocalOrchestrator`: an instance is one
supervised process group running the SLA's `cmd` on this machine, with the SLA's
`environment` on top of a minimal inherited environment (`PATH`, `HOME`, `LANG`, `TMPDIR`, CA
bundle variables), in its own directory under `state_dir/worker`, its output in a log file
whose last lines become the instance's `logs`. On a node with a network namespace
(`FakeNode.netns`) the command is `ip netns exec <netns> <cmd...>`: the instance runs inside
that node's network, as a process on that Oakestra worker would, and reports the node's
`address` as `publicip` and `host_ip` (Oakestra: the worker's IP). No image is pulled and
nothing else is isolated: the worker acts as if every image were in its local store and runs
`cmd` on this machine's file system, so `cmd` must be runnable here (an SLA without `cmd`
fails, since the image's default command is unknown). `port` is recorded but not mapped:
services listen on their node's network directly. Oakestra's cluster re-deploys
`FAILED`/`DEAD` instances by itself; the fake does not.
"""

from __future__ import annotations

import heapq
import itertools
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flops_core.logs import get_logger
from flops_manager.orchestrators import (
    DeployError,
    LocalOrchestrator,
    OrchestratorError,
    ServiceSpec,
    ServiceStatus,
)
from flops_manager.orchestrators import Placement as SpecPlacement
from tests.fakes.oakestra.model import FakeCluster, FakeNode
from tests.fakes.oakestra.scheduler import Placement, place
from tests.fakes.oakestra.store import Store

__all__ = ["TERMINAL_STATUSES", "RunningInstance", "Worker"]

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "DEAD", "UNDEPLOYED"})
HOST_PORT = 50011
"""What Oakestra reports as an instance's `host_port`: the worker's node port, not the service's."""

_log = get_logger("tests.fake_oakestra")
_POLL_S = 0.05
_LOG_EVERY_S = 0.25
_LOG_LINES = 50
_KILL_TIMEOUT_S = 3.0
_IP = shutil.which("ip") or "/usr/sbin/ip"
"""`ip` by its path: the instances' minimal `PATH` may lack `/usr/sbin`."""


@dataclass(frozen=True)
class RunningInstance:
    """An instance whose process is alive."""

    service_id: str
    instance_number: int
    pid: int
    cluster: str
    node: str


@dataclass
class _Tracked:
    placement: Placement
    memory: float
    vcpus: float
    local_id: str | None = None
    ended: bool = False
    logs_read_at: float = 0.0


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class Worker:
    """Runs the asynchronous part of the fake; the caller owns `lock` and the stored documents.

    Parameters
    ----------
    lock : threading.RLock
        The fake's one lock; every step and poll holds it.
    store : Store
        The documents whose `status` and `instance_list` the worker writes.
    clusters : list[FakeCluster]
        Where instances go (read live: activity changes are seen at the next scheduling).
    state_dir : pathlib.Path
        The `LocalOrchestrator` keeps its processes' directories and logs under it.
    step_delay_s : float
        Delay between two status steps.
    head_statuses : bool
        Report only the negative statuses Oakestra v0.4.411 sends (see `scheduler.py`).
    """

    def __init__(
        self,
        *,
        lock: threading.RLock,
        store: Store,
        clusters: list[FakeCluster],
        state_dir: Path,
        step_delay_s: float,
        head_statuses: bool,
    ) -> None:
        self._lock = lock
        self._store = store
        self._clusters = clusters
        self._delay = step_delay_s
        self._head_statuses = head_statuses
        topology = {c.name: [n.name for n in c.nodes] for c in clusters if c.nodes}
        self._runtime = LocalOrchestrator(state_dir, clusters=topology or None)
        self._tracked: dict[tuple[str, int], _Tracked] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fake-oakestra-worker", daemon=True)
        self._thread.start()

    # Called under the fake's lock ----------------------------------------------------------
    def request_instance(self, service_id: str) -> None:
        """Set the service `REQUESTED` and queue the scheduling of one more instance."""
        job = self._store.jobs[service_id]
        job["status"] = "REQUESTED"
        job["status_detail"] = "Waiting for scheduling decision"
        self._after(lambda: self._schedule(service_id))

    def detach(self, service_id: str, numbers: list[int] | None = None) -> list[str]:
        """Stop following instances of a service; return their processes' ids for `kill`."""
        keys = [
            key
            for key in self._tracked
            if key[0] == service_id and (numbers is None or key[1] in numbers)
        ]
        local_ids = [self._tracked.pop(key).local_id for key in keys]
        return [local_id for local_id in local_ids if local_id is not None]

    def running_instances(self) -> list[RunningInstance]:
        """Return the instances whose process is alive."""
        running: list[RunningInstance] = []
        for (service_id, number), tracked in self._tracked.items():
            if tracked.local_id is None or tracked.ended:
                continue
            state = self._runtime.status(tracked.local_id)
            if state.status is ServiceStatus.RUNNING and state.pids:
                running.append(
                    RunningInstance(
                        service_id=service_id,
                        instance_number=number,
                        pid=state.pids[0],
                        cluster=tracked.placement.cluster.name,
                        node=tracked.placement.node.name,
                    )
                )
        return running

    # Called without the lock -------------------------------------------------------------
    def kill(self, local_ids: list[str]) -> None:
        """Stop processes (SIGTERM, then SIGKILL after a few seconds) and wait until gone."""
        for local_id in local_ids:
            try:
                self._runtime.undeploy(local_id, timeout=_KILL_TIMEOUT_S)
            except OrchestratorError as e:
                _log.warning("fake oakestra: could not stop %s: %s", local_id, e)

    def close(self) -> None:
        """Stop the engine thread, then every process it started."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout=10.0)
        self._runtime.close()

    # The engine --------------------------------------------------------------------------
    def _after(self, step: Callable[[], None]) -> None:
        with self._wake:
            due = time.monotonic() + self._delay
            heapq.heappush(self._timers, (due, next(self._sequence), step))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                now = time.monotonic()
                wait = _POLL_S
                if self._timers:
                    wait = min(wait, self._timers[0][0] - now)
                if wait > 0:
                    self._wake.wait(wait)
                now = time.monotonic()
                due: list[Callable[[], None]] = []
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
            for step in due:
                self._guarded(step)
            self._guarded(self._poll)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            with self._lock:
                step()
        except Exception:  # the engine must outlive a bad step
            _log.exception("fake oakestra: a worker step failed")

    # Steps (under the lock) --------------------------------------------------------------
    def _reservations(self) -> dict[str, tuple[float, float]]:
        reserved: dict[str, tuple[float, float]] = {}
        for tracked in self._tracked.values():
            if not tracked.ended:
                node_id = tracked.placement.node.node_id
                memory, vcpus = reserved.get(node_id, (0.0, 0.0))
                reserved[node_id] = (memory + tracked.memory, vcpus + tracked.vcpus)
        return reserved

    def _schedule(self, service_id: str) -> None:
        job = self._store.jobs.get(service_id)
        if job is None:
            return
        result = place(job, self._clusters, self._reservations(), head_statuses=self._head_statuses)
        if isinstance(result, str):
            job["status"] = result  # the detail stays "Waiting for scheduling decision"
            return
        number = int(job["next_instance_progressive_number"])
        job["instance_list"].append(
            {
                "instance_number": number,
                "cluster_id": result.cluster.cluster_id,
                "cluster_location": result.cluster.location,
                "status": "CLUSTER_SCHEDULED",
            }
        )
        job["status"] = "CLUSTER_SCHEDULED"
        job["next_instance_progressive_number"] = number + 1
        self._tracked[(service_id, number)] = _Tracked(
            placement=result, memory=_number(job.get("memory")), vcpus=_number(job.get("vcpus"))
        )
        self._after(lambda: self._node_scheduled(service_id, number))

    def _instance(
        self, service_id: str, number: int
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        job = self._store.jobs.get(service_id)
        if job is None or (service_id, number) not in self._tracked:
            return None
        for instance in job["instance_list"]:
            if instance.get("instance_number") == number:
                return job, instance
        return None

    def _node_scheduled(self, service_id: str, number: int) -> None:
        found = self._instance(service_id, number)
        if found is None:
            return
        job, instance = found
        node: FakeNode = self._tracked[(service_id, number)].placement.node
        instance.update(
            {
                "cpu_percent": 0.0,
                "memory_percent": 0.0,
                "publicip": node.public_ip,
                "disk": 0,
                "logs": "",
                "worker_id": node.node_id,
                "host_ip": node.public_ip,
                "host_port": HOST_PORT,
                "cpu_history": [],
                "memory_history": [],
            }
        )
        self._set_status(job, instance, "NODE_SCHEDULED", "No extra information")
        self._after(lambda: self._creating(service_id, number))

    def _creating(self, service_id: str, number: int) -> None:
        found = self._instance(service_id, number)
        if found is not None:
            self._set_status(*found, "CREATING", "No extra information")
            self._after(lambda: self._start(service_id, number))

    def _start(self, service_id: str, number: int) -> None:
        found = self._instance(service_id, number)
        if found is None:
            return
        job, instance = found
        tracked = self._tracked[(service_id, number)]
        if tracked.placement.platform_mismatch is not None:
            tracked.ended = True
            self._set_status(job, instance, "FAILED", tracked.placement.platform_mismatch)
            return
        try:
            spec = self._spec(job, tracked.placement)
            tracked.local_id = self._runtime.deploy(spec)
        except (DeployError, ValidationError, OrchestratorError) as e:
            tracked.ended = True
            detail = str(e) if isinstance(e, OrchestratorError) else "invalid cmd or environment"
            self._set_status(job, instance, "FAILED", detail)
            return
        self._set_status(job, instance, "RUNNING", "No extra information")

    @staticmethod
    def _spec(job: dict[str, Any], placement: Placement) -> ServiceSpec:
        env: dict[str, str] = {}
        for entry in job.get("environment") or []:
            key, sep, value = str(entry).partition("=")
            if sep:
                env[key] = value
        nodes_known = bool(placement.cluster.nodes)
        command = [str(arg) for arg in job.get("cmd") or []]
        if placement.node.netns is not None and command:
            command = [_IP, "netns", "exec", placement.node.netns, *command]
        return ServiceSpec(
            name=job["microservice_name"],
            project_id=job["applicationID"],
            role="oakestra-instance",
            command=command,
            env=env,
            one_shot=bool(job.get("one_shot", False)),
            placement=SpecPlacement(
                cluster=placement.cluster.name if nodes_known else None,
                node=placement.node.name if nodes_known else None,
            ),
        )

    def _poll(self) -> None:
        now = time.monotonic()
        for (service_id, number), tracked in list(self._tracked.items()):
            if tracked.local_id is None or tracked.ended:
                continue
            found = self._instance(service_id, number)
            if found is None:
                continue
            job, instance = found
            state = self._runtime.status(tracked.local_id)
            if not state.status.terminal and now - tracked.logs_read_at < _LOG_EVERY_S:
                continue
            tracked.logs_read_at = now
            instance["logs"] = "\n".join(self._runtime.logs(tracked.local_id, tail=_LOG_LINES))
            if not state.status.terminal:
                continue
            tracked.ended = True
            code = state.exit_code
            if state.status is ServiceStatus.COMPLETED:
                status = "COMPLETED" if job.get("one_shot") else "DEAD"
                self._set_status(job, instance, status, "exited with code 0")
            elif state.status is ServiceStatus.FAILED:
                self._set_status(job, instance, "FAILED", f"exited with code {code}")

    @staticmethod
    def _set_status(
        job: dict[str, Any], instance: dict[str, Any], status: str, detail: str
    ) -> None:
        """Write an instance's status; the service copies it, but is `RUNNING` only with all."""
        instance["status"] = status
        instance["status_detail"] = detail
        instance["last_modified_timestamp"] = time.time()
        if status == "RUNNING" and any(
            other.get("status") != "RUNNING" for other in job["instance_list"]
        ):
            return
        job["status"] = status
        job["status_detail"] = detail
