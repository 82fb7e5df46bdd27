"""What a previous manager left of the shared services, and whether their ports are free.

A manager that is killed (SIGKILL, a crash, the OOM killer) cannot stop MLflow and the data
servers: they run in process groups of their own and outlive it. Its local orchestrator's
records (`<data dir>/services/<id>/service.json`: pid, process group, boot id and process start
time, so that a reused pid is never taken for ours) let the next manager's orchestrator adopt
them. The stack then stops every adopted shared service, whole process group, before it starts
its own (`stop_leftovers`), instead of adopting them for good, because

- an adopted process is not this manager's child: it is not restarted when it fails and its
  exit code is unknown, while the stack's services are supervised with a restart policy;
- the manager may have been restarted to change its settings (ports, nodes, tracking URI) or
  its code; a leftover would keep serving the old ones;
- nothing is lost: MLflow's store and each node's data live on disk in the data directory,
  and the replacement costs a few seconds of MLflow start, which every start pays anyway.

A port that is still taken after that is held by a program this manager did not start:
`port_problem` names the port, who holds it if `/proc` tells, and the setting to change.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection
from pathlib import Path

from flops_core.logs import get_logger
from flops_manager.orchestrators import Orchestrator, OrchestratorError

__all__ = ["port_problem", "stop_leftovers"]

_log = get_logger("manager.stack")
_PROC = Path("/proc")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def stop_leftovers(
    orchestrator: Orchestrator, project_id: str, *, ours: Collection[str], timeout: float = 10.0
) -> list[str]:
    """Undeploy the live services of `project_id` that this stack did not start; their names.

    Parameters
    ----------
    orchestrator : Orchestrator
        Runs the shared services (and has adopted what a previous manager left).
    project_id : str
        The pseudo-project of the shared services.
    ours : Collection[str]
        Service ids this stack deployed itself.
    timeout : float
        Seconds each gets after SIGTERM before its group is killed.
    """
    stopped: list[str] = []
    for state in orchestrator.list_services(project_id):
        if state.status.terminal or state.service_id in ours:
            continue
        _log.warning(
            "stopping %s left running by a previous manager (%s, pids %s) to start it anew",
            state.name, state.service_id, state.pids,
        )  # fmt: skip
        try:
            orchestrator.undeploy(state.service_id, timeout=timeout)
        except OrchestratorError as e:
            _log.error("cannot stop the leftover %s (%s): %s", state.name, state.service_id, e)
            continue
        stopped.append(state.name)
    return stopped


def port_problem(host: str, port: int, what: str, setting: str) -> str | None:
    """Why `what` cannot listen on `host:port`, or `None` if the port is free.

    Parameters
    ----------
    host, port : str, int
        Where the service will listen (an IPv4 or IPv6 address, or a host name).
    what : str
        The service, for the message (`MLflow`, `the data server of node 1`).
    setting : str
        The setting that chooses the port, for the message (`FLOPS_MLFLOW_PORT`).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers themselves bind: a port in TIME_WAIT is free for them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            reason = e.strerror or str(e)
        else:
            return None
    holder = _listener(port)
    return (
        f"{what} cannot listen on {host}:{port}: {reason}"
        + (f" (held by {holder}, which this manager did not start)" if holder else "")
        + f"; stop that program or set {setting} to a free port"
    )


def _listener(port: int) -> str | None:
    """`pid N (name)` of a process listening on `port`, if `/proc` shows one we may read.

    Only the program's name, never its command line: that may hold another program's secrets,
    and the message reaches the unauthenticated health endpoint.
    """
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()  # sl local_address rem_address st ... inode
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return f"pid {entry.name} ({(entry / 'comm').read_text().strip()})"
        except OSError:  # gone, or not ours to read
            continue
    return None
