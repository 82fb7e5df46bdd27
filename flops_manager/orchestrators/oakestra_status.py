"""What Oakestra's service documents say: statuses, their meaning, instance details.

Facts (../shared/reference/oakestra-api.md §3): the scheduler writes negative results to the
*service's* `status` and adds no instance; instance statuses come from the cluster and the
worker (`CREATING`, `RUNNING`, `COMPLETED`, `FAILED`, `DEAD`, ...); newer roots add statuses
such as `INSTANTIATION`, so unknown strings are treated as still in progress. `host_port` is
the worker's node port, not the service's; `publicip` is where the service is reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flops_manager.orchestrators.orchestrator import ServiceStatus

__all__ = ["NEGATIVE_SCHEDULING", "ServiceReport", "map_status", "object_id",
           "read_service_document"]  # fmt: skip

NEGATIVE_SCHEDULING: dict[str, str] = {
    "NoActiveClusterWithCapacity": "no active cluster has the memory and vCPUs it asks for",
    "TargetClusterNotFound": "the cluster it is pinned to does not exist",
    "TargetClusterNotActive": "the cluster it is pinned to has not reported in the last 30 s "
    "(or no cluster is active)",
    "TargetClusterNoCapacity": "the cluster it is pinned to lacks the memory or vCPUs",
    "NO_WORKER_CAPACITY": "no worker of the cluster has the memory or vCPUs",
    "NO_QUALIFIED_WORKER_FOUND": "no worker of the cluster qualifies (virtualization, resources)",
    "NO_NODE_FOUND": "the node it is pinned to does not exist in the cluster",
}
"""The scheduler's negative results, with what they mean for users."""

_STARTING = frozenset({"CREATING", "CREATED", "INSTANTIATION"})
_FAILED = frozenset({"FAILED", "DEAD"})


def map_status(raw: str | None) -> ServiceStatus:
    """Map an Oakestra status onto `ServiceStatus`; unknown strings are still pending."""
    if raw in NEGATIVE_SCHEDULING or raw in _FAILED:
        return ServiceStatus.FAILED
    if raw == "RUNNING":
        return ServiceStatus.RUNNING
    if raw == "COMPLETED":
        return ServiceStatus.COMPLETED
    if raw == "UNDEPLOYED":
        return ServiceStatus.STOPPED
    if raw in _STARTING:
        return ServiceStatus.STARTING
    return ServiceStatus.PENDING


@dataclass(frozen=True)
class ServiceReport:
    """One `GET /api/service/{id}` document, read for FLOps."""

    status: ServiceStatus
    raw_status: str
    message: str
    ip: str | None
    cluster_id: str
    worker_id: str | None
    logs: list[str] | None


def read_service_document(doc: dict[str, Any]) -> ServiceReport:
    """Read the status of a one-instance service, with a message users can act on."""
    instances = [i for i in doc.get("instance_list") or [] if isinstance(i, dict)]
    service_status = doc.get("status")
    instance = instances[0] if instances else None
    raw = str(service_status or "") if instance is None else str(instance.get("status") or "")
    if service_status in NEGATIVE_SCHEDULING:
        raw = str(service_status)
    detail = str((instance or doc).get("status_detail") or "")
    if raw in NEGATIVE_SCHEDULING:
        message = f"Oakestra could not place it: {raw} ({NEGATIVE_SCHEDULING[raw]})"
    else:
        message = f"Oakestra status {raw or 'none'}" + (f": {detail}" if detail else "")
    found = (instance or {}).get("logs")
    logs = (
        found.splitlines() if isinstance(found, str)
        else [str(line) for line in found] if isinstance(found, list) else None
    )  # fmt: skip
    info = instance or {}
    return ServiceReport(
        status=map_status(raw),
        raw_status=raw,
        message=message,
        ip=str(info.get("publicip") or info.get("host_ip") or "") or None,
        cluster_id=str(info.get("cluster_id") or ""),
        worker_id=str(info["worker_id"]) if info.get("worker_id") else None,
        logs=logs,
    )


def object_id(value: Any) -> str:
    """Mongo ids come as `{"$oid": ...}` or as plain strings."""
    if isinstance(value, dict):
        return str(value.get("$oid", ""))
    return "" if value is None else str(value)
