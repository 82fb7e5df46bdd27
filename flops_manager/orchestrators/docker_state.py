"""Map a container's `docker inspect` answer onto a `ServiceState`.

Docker `created` is `starting` (or `failed` if the daemon could not start it), `running` and
`paused` are `running`, `restarting` is `pending`, and `exited`/`dead` are `completed` (exit
code 0) or `failed`. A container the backend stopped on `undeploy` carries
`UNDEPLOYED_SUFFIX` in its name, which is how its `stopped` status survives a manager restart
(labels cannot change after a container is created).
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flops_manager.orchestrators.docker_spec import DockerLabels
from flops_manager.orchestrators.orchestrator import ServiceState, ServiceStatus

__all__ = ["UNDEPLOYED_SUFFIX", "container_state", "ended_at", "is_ended", "parse_time"]

UNDEPLOYED_SUFFIX = "-undeployed"
"""Appended to the name of a container that `undeploy` stopped."""

_ACTIVE = ("running", "paused", "restarting")


def parse_time(value: str | None) -> datetime | None:
    """Parse one of Docker's RFC 3339 times (nanoseconds allowed); `None` for the zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def _undeployed(attrs: Mapping[str, Any]) -> bool:
    return str(attrs.get("Name", "")).endswith(UNDEPLOYED_SUFFIX)


def is_ended(attrs: Mapping[str, Any]) -> bool:
    """Whether the container's service has reached a terminal status."""
    state = attrs["State"]
    if state["Status"] in ("exited", "dead", "removing"):
        return True
    return state["Status"] == "created" and (bool(state.get("Error")) or _undeployed(attrs))


def ended_at(attrs: Mapping[str, Any]) -> datetime | None:
    """When an ended container ended (its creation time if it never ran)."""
    return parse_time(attrs["State"].get("FinishedAt")) or parse_time(attrs.get("Created"))


_EXIT_HINTS = {126: "command not executable", 127: "command not found"}


def _exit_text(code: int) -> str:
    if code in _EXIT_HINTS:
        return f"exited with code {code} ({_EXIT_HINTS[code]}?)"
    if code > 128:
        try:
            return f"exited with code {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exited with code {code}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _status(attrs: Mapping[str, Any], max_restarts: int) -> tuple[ServiceStatus, str]:
    state = attrs["State"]
    docker_status, code = state["Status"], int(state.get("ExitCode") or 0)
    restarts = int(attrs.get("RestartCount") or 0)
    after = f" after {_plural(restarts, 'restart')}" if restarts else ""
    if _undeployed(attrs) and docker_status not in _ACTIVE:  # marked, then stopped
        if docker_status == "created":
            return ServiceStatus.STOPPED, "undeployed before it started"
        if code == 128 + signal.SIGKILL:
            return ServiceStatus.STOPPED, "undeployed; killed with SIGKILL after the stop timeout"
        return ServiceStatus.STOPPED, f"undeployed; {_exit_text(code)}"
    if _undeployed(attrs):
        return ServiceStatus.RUNNING, f"{docker_status}; being undeployed"
    if docker_status in ("running", "paused"):
        since = f" (restart {restarts} of {max_restarts})" if restarts else ""
        return ServiceStatus.RUNNING, f"{docker_status}{since}"
    if docker_status == "restarting":
        return ServiceStatus.PENDING, f"{_exit_text(code)}; restart {restarts} of {max_restarts}"
    if docker_status == "created":
        if state.get("Error"):
            return ServiceStatus.FAILED, f"the container did not start: {state['Error']}"
        return ServiceStatus.STARTING, "container created"
    if docker_status == "removing":
        return ServiceStatus.STOPPED, "the container is being removed"
    if state.get("OOMKilled"):
        return ServiceStatus.FAILED, f"killed: out of memory; {_exit_text(code)}{after}"
    if docker_status == "dead":
        return ServiceStatus.FAILED, f"the container is dead: {state.get('Error') or 'unknown'}"
    if code == 0:
        return ServiceStatus.COMPLETED, f"{_exit_text(code)}{after}"
    return ServiceStatus.FAILED, f"{_exit_text(code)}{after}"


def container_state(
    attrs: Mapping[str, Any], labels: DockerLabels, *, cluster: str, node: str | None
) -> ServiceState:
    """Return the `ServiceState` of the container `attrs` (a `docker inspect` answer).

    Parameters
    ----------
    attrs : Mapping[str, Any]
        The container as the daemon describes it.
    labels : DockerLabels
        The label keys the backend wrote.
    cluster, node : str, str | None
        Where it runs: the backend's cluster and the Docker host's name.
    """
    state = attrs["State"]
    values = attrs["Config"].get("Labels") or {}
    policy = attrs["HostConfig"].get("RestartPolicy") or {}
    max_restarts = int(policy.get("MaximumRetryCount") or 0) if policy.get("Name") else 0
    status, message = _status(attrs, max_restarts)
    ran = state["Status"] not in ("created", "running", "paused")
    exit_code = int(state.get("ExitCode") or 0) if ran or state.get("Error") else None
    pid = int(state.get("Pid") or 0)
    return ServiceState(
        service_id=values.get(labels.service_id, ""),
        name=values.get(labels.key("name"), ""),
        project_id=values.get(labels.project, ""),
        role=values.get(labels.key("role"), ""),
        status=status,
        exit_code=exit_code,
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")) if status.terminal else None,
        restarts=int(attrs.get("RestartCount") or 0),
        addresses=[a for a in values.get(labels.key("addresses"), "").split(",") if a],
        pids=[pid] if pid else [],
        cluster=cluster,
        node=node,
        message=message,
    )
