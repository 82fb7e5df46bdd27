"""Oakestra SLAs (`sla_version` `v2.0`) from orchestrator-neutral `ServiceSpec`s.

Field names are Oakestra's own (`microservice_name`, `vcpus`, ...; the documentation's `vcpu`
is silently ignored by the schema). Names follow `^[a-zA-Z0-9]{1,30}$`. Only `direct`
constraints are honoured by Oakestra's scheduler, so placement becomes one `direct`
constraint with `cluster` and/or `node`; the target platform goes into `platform`, which the
NodeEngine passes to its image pull.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from flops_core.redact import redact_url
from flops_manager.orchestrators.orchestrator import DeployError
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = ["NAME_PATTERN", "application_name", "application_sla", "microservice"]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]{1,30}$")
"""Oakestra's rule for application, namespace and service names."""

SLA_VERSION = "v2.0"


def application_name(project_id: str) -> str:
    """The Oakestra application of a project: `flops` and the project id's letters and digits."""
    cleaned = "".join(ch for ch in project_id if ch.isascii() and ch.isalnum())
    if cleaned != project_id or len(cleaned) > 25:
        # Keep names unique even when characters are dropped or the id is long.
        cleaned = cleaned[:15] + hashlib.sha256(project_id.encode()).hexdigest()[:10]
    return f"flops{cleaned}"


def microservice(spec: ServiceSpec, *, namespace: str) -> dict[str, Any]:
    """The SLA entry of one service.

    Raises
    ------
    DeployError
        The spec has no image (Oakestra runs images only).
    """
    if not spec.image:
        raise DeployError(
            f"service {spec.name}: Oakestra runs container images and this spec has none; "
            "run the manager with FLOPS_SERVICE_RUNTIME=images (the default on oakestra)"
        )
    command = list(spec.command)
    env = dict(spec.env)
    for key, value in env.items():
        if _has_credentials(value):
            raise DeployError(
                f"service {spec.name}: environment variable {key} holds a URL with credentials, "
                "and Oakestra keeps SLAs in clear text, so FLOps does not send credentials "
                "through it: use a URL the workers can reach without credentials"
            )
    if spec.environment_path is not None:
        # A Python environment on this machine: only workers that share its file system
        # (a one-host Oakestra, the tests' fake) can run it.
        bin_dir = spec.environment_path / "bin"
        if command and command[0] == "python":
            command[0] = str(bin_dir / "python")
        env.setdefault("PATH", f"{bin_dir}:/usr/local/bin:/usr/bin:/bin")
    entry: dict[str, Any] = {
        "microserviceID": "",
        "microservice_name": spec.name,
        "microservice_namespace": namespace,
        "virtualization": "container",
        "code": spec.image,
        "cmd": command,
        "environment": [f"{key}={value}" for key, value in env.items()],
        "one_shot": spec.one_shot,
        "privileged": spec.privileged,
    }
    resources = spec.resources
    if resources.memory_mb is not None:
        entry["memory"] = resources.memory_mb
    if resources.vcpus is not None:
        entry["vcpus"] = max(1, math.ceil(resources.vcpus))
    if resources.storage_mb is not None:
        entry["storage"] = resources.storage_mb
    if spec.ports:
        entry["port"] = ";".join(
            f"{port.published_port}:{port.container_port}/{port.protocol}" for port in spec.ports
        )
    placement = spec.placement
    if placement.cluster or placement.node:
        constraint: dict[str, Any] = {"type": "direct"}
        if placement.cluster:
            constraint["cluster"] = placement.cluster
        if placement.node:
            constraint["node"] = placement.node
        entry["constraints"] = [constraint]
    if len(spec.platforms) == 1:
        entry["platform"] = spec.platforms[0]
    return entry


def _has_credentials(value: str) -> bool:
    try:
        return redact_url(value) != value
    except ValueError:  # not a URL
        return False


def application_sla(
    *,
    customer: str,
    name: str,
    namespace: str,
    specs: list[ServiceSpec],
    application_id: str = "",
    description: str = "",
) -> dict[str, Any]:
    """A whole SLA: one application with `specs` as its microservices.

    With `application_id` set it is the body of `POST /api/service/` (append to that app).
    """
    for label, value in (("application name", name), ("namespace", namespace)):
        if not NAME_PATTERN.match(value):
            raise DeployError(f"Oakestra {label} {value!r} must match {NAME_PATTERN.pattern}")
    return {
        "sla_version": SLA_VERSION,
        "customerID": customer,
        "applications": [
            {
                "applicationID": application_id,
                "application_name": name,
                "application_namespace": namespace,
                "application_desc": description,
                "microservices": [microservice(spec, namespace=namespace) for spec in specs],
            }
        ],
    }
