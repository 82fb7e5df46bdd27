"""How the `docker` backend turns a `ServiceSpec` into a container: labels, limits, network.

Labels (`<prefix>.project`, `.role`, `.name`, `.service-id`, `.one-shot`, `.managed-by`,
`.image`, `.addresses`) make every container findable and reportable by a manager that did not
create it, e.g. after a restart. `command` becomes the container's command (Docker's `CMD`);
the image's `ENTRYPOINT` is kept. FLOps images set no entrypoint, so
`["python", "-m", "flops_learner", ...]` runs as given.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from flops_manager.orchestrators.local_process import BLAS_THREAD_VARIABLES
from flops_manager.orchestrators.orchestrator import DeployError
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = ["HOST_NETWORK", "DockerLabels", "container_options", "service_addresses"]

HOST_NETWORK = "host"
_LABEL_PREFIX = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")


@dataclass(frozen=True)
class DockerLabels:
    """The label keys of one label prefix (default `io.flops`)."""

    prefix: str = "io.flops"

    def __post_init__(self) -> None:
        if not _LABEL_PREFIX.match(self.prefix):
            raise ValueError(f"invalid label prefix {self.prefix!r}, expected e.g. 'io.flops'")

    def key(self, name: str) -> str:
        """Return the full key of label `name`, e.g. `io.flops.project`."""
        return f"{self.prefix}.{name}"

    @property
    def service_id(self) -> str:
        """The key of the label holding the FLOps service id."""
        return self.key("service-id")

    @property
    def managed_by(self) -> str:
        """The key of the label naming the orchestrator instance that created the container."""
        return self.key("managed-by")

    @property
    def project(self) -> str:
        """The key of the label holding the project id."""
        return self.key("project")

    def selector(self, instance: str, **values: str) -> list[str]:
        """Return `key=value` label filters for the instance's containers (and `values`)."""
        pairs = {"managed-by": instance, **values}
        return [f"{self.key(name.replace('_', '-'))}={value}" for name, value in pairs.items()]

    def for_service(
        self, spec: ServiceSpec, *, service_id: str, instance: str, addresses: list[str]
    ) -> dict[str, str]:
        """Return the labels of the container of `spec` (never its environment)."""
        return {
            self.key("project"): spec.project_id,
            self.key("role"): spec.role,
            self.key("name"): spec.name,
            self.key("service-id"): service_id,
            self.key("one-shot"): "true" if spec.one_shot else "false",
            self.key("managed-by"): instance,
            self.key("image"): spec.image or "",
            self.key("addresses"): ",".join(addresses),
        }


def service_addresses(spec: ServiceSpec, network_mode: str, container_name: str) -> list[str]:
    """Return `host:port` per port: `127.0.0.1:<port>` on the host network, else `<name>:<port>`.

    Raises
    ------
    DeployError
        A port is remapped (`host_port != container_port`) on the host network.
    """
    if network_mode == HOST_NETWORK:
        if any(port.host_port not in (None, port.container_port) for port in spec.ports):
            raise DeployError(
                "ports cannot be remapped on the host network: use host_port=container_port "
                "or configure a named Docker network"
            )
        return [f"127.0.0.1:{port.published_port}" for port in spec.ports]
    return [f"{container_name}:{port.container_port}" for port in spec.ports]


def _environment(spec: ServiceSpec) -> dict[str, str]:
    """FLOps defaults (no Flower telemetry, unbuffered Python, BLAS threads), then `spec.env`."""
    env = {"FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    if spec.resources.vcpus is not None:
        threads = str(max(1, math.ceil(spec.resources.vcpus)))
        env.update(dict.fromkeys(BLAS_THREAD_VARIABLES, threads))
    env.update(spec.env)
    return env


def _restart_policy(spec: ServiceSpec) -> dict[str, Any]:
    # Docker reads MaximumRetryCount 0 as "no limit": zero restarts is policy "no".
    if spec.one_shot or spec.restart.policy == "never" or spec.restart.max_restarts == 0:
        return {"Name": "no"}
    return {"Name": "on-failure", "MaximumRetryCount": spec.restart.max_restarts}


def container_options(
    spec: ServiceSpec,
    *,
    name: str,
    labels: dict[str, str],
    network_mode: str,
    platform: str | None,
    init: bool,
    vcpus: float | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the keyword arguments of `create_container` and `create_host_config` for `spec`.

    Parameters
    ----------
    spec : ServiceSpec
        The service; the caller adds the image (the resolved image id).
    name, labels : str, dict[str, str]
        The container's name and labels.
    network_mode : str
        `host`, or a user-defined network whose members resolve each other by name; ports
        are published on the Docker host (at `host_port`) only on such a network.
    platform : str | None
        The platform to run as (emulated if foreign).
    init : bool
        Run Docker's init as PID 1, which forwards SIGTERM and reaps orphans.
    vcpus : float | None
        CPU limit (`spec.resources.vcpus`, capped by the caller at the host's CPUs).
    """
    memory_mb = spec.resources.memory_mb
    host_config: dict[str, Any] = {
        "network_mode": network_mode,
        "privileged": spec.privileged,
        "restart_policy": _restart_policy(spec),
        "init": init,
        "mem_limit": memory_mb * 2**20 if memory_mb is not None else None,
        "nano_cpus": round(vcpus * 1e9) if vcpus is not None else None,
    }
    if spec.volumes:
        host_config["binds"] = {
            name: {"bind": path, "mode": "rw"} for name, path in spec.volumes.items()
        }
    options: dict[str, Any] = {
        "command": list(spec.command) or None,
        "name": name,
        "labels": labels,
        "environment": _environment(spec),
        "working_dir": str(spec.working_dir) if spec.working_dir is not None else None,
        "platform": platform,
    }
    if network_mode != HOST_NETWORK and spec.ports:
        bindings = {f"{p.container_port}/{p.protocol}": p.published_port for p in spec.ports}
        host_config["port_bindings"] = bindings
        options["ports"] = [(p.container_port, p.protocol) for p in spec.ports]
    return options, host_config
