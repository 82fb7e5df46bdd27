"""The containers of one `docker` backend instance, found by their labels.

`DockerContainers` creates, finds, stops and removes the containers whose
`<prefix>.managed-by` label names its instance. It remembers which container holds which
service id, as a cache only: a miss asks the daemon by label, so a new instance (a restarted
manager) finds every container an earlier one created.
"""

from __future__ import annotations

import contextlib
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors

from flops_core.logs import get_logger
from flops_manager.orchestrators.docker_spec import DockerLabels
from flops_manager.orchestrators.docker_state import UNDEPLOYED_SUFFIX, ended_at, is_ended
from flops_manager.orchestrators.orchestrator import DeployError, ServiceNotFoundError

__all__ = ["DockerContainers"]

_ENDED = ["created", "exited", "dead"]

_log = get_logger("manager.orchestrator")


class _CannotApplyCaps(Exception):
    """Raised inside the backend when the daemon cannot give a container all capabilities."""


class DockerContainers:
    """Label-based access to the containers of orchestrator instance `instance`; thread-safe.

    Every method takes a `docker.APIClient` (within `DockerConnection.calls()`, which
    translates connection errors) and returns `docker inspect` answers.

    Parameters
    ----------
    labels : DockerLabels
        The label keys.
    instance : str
        The value of the `managed-by` label of this instance's containers.
    """

    def __init__(self, labels: DockerLabels, instance: str) -> None:
        self.labels = labels
        self.instance = instance
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}

    def selector(self, project_id: str | None = None, **values: str) -> list[str]:
        """Return label filters for this instance's containers (of one project, if given)."""
        if project_id is not None:
            values["project"] = project_id
        return self.labels.selector(self.instance, **values)

    def create(
        self, client: Any, image_id: str, options: dict[str, Any], host_options: dict[str, Any]
    ) -> str:
        """Create and start a container (see `container_options`); return its id.

        Raises
        ------
        DeployError
            The daemon refuses the container or cannot start it (it is then removed).
        """
        name, labels = options["name"], options["labels"]
        try:
            container_id = self._create_and_start(client, image_id, options, host_options)
        except _CannotApplyCaps:
            # A daemon that itself lacks capabilities (dockerd nested in a container) cannot
            # start `--privileged` containers; SYS_ADMIN without seccomp/AppArmor profiles is
            # what the privileged services (the image builder's Buildah) need.
            _log.warning(
                "project %s: %s: the Docker daemon cannot grant full privileges; running it "
                "with SYS_ADMIN and no seccomp/AppArmor profile instead",
                labels[self.labels.project], name,
            )  # fmt: skip
            reduced = {
                **host_options, "privileged": False, "cap_add": ["SYS_ADMIN"],
                "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            }  # fmt: skip
            container_id = self._create_and_start(client, image_id, options, reduced)
        with self._lock:
            self._ids[labels[self.labels.service_id]] = container_id
        return container_id

    def _create_and_start(
        self, client: Any, image_id: str, options: dict[str, Any], host_options: dict[str, Any]
    ) -> str:
        name, labels = options["name"], options["labels"]
        try:
            host_config = client.create_host_config(**host_options)
            created = client.create_container(image_id, host_config=host_config, **options)
        except (docker.errors.APIError, docker.errors.InvalidVersion) as e:
            message = getattr(e, "explanation", None) or e
            raise DeployError(f"cannot create container {name}: {message}") from e
        container_id = str(created["Id"])
        for warning in created.get("Warnings") or []:
            _log.warning("project %s: %s: %s", labels[self.labels.project], name, warning)
        try:
            client.start(container_id)
        except docker.errors.APIError as e:
            with contextlib.suppress(docker.errors.APIError):
                client.remove_container(container_id, force=True)
            explanation = str(e.explanation or e)
            if host_options.get("privileged") and "apply caps" in explanation:
                raise _CannotApplyCaps(explanation) from e
            raise DeployError(f"cannot start container {name}: {explanation}") from e
        return container_id

    def find(self, client: Any, service_id: str) -> dict[str, Any] | None:
        """Return the service's container, or `None` if this instance has none."""
        with self._lock:
            known = self._ids.get(service_id)
        if known is not None:
            candidates = [known]
        else:
            selector = self.selector(service_id=service_id)
            candidates = [e["Id"] for e in client.containers(all=True, filters={"label": selector})]
        for container_id in candidates:
            try:
                attrs: dict[str, Any] = client.inspect_container(container_id)
            except docker.errors.NotFound:
                with self._lock:
                    self._ids.pop(service_id, None)
                return self.find(client, service_id) if known is not None else None
            with self._lock:
                self._ids[service_id] = container_id
            return attrs
        return None

    def get(self, client: Any, service_id: str) -> dict[str, Any]:
        """Return the service's container.

        Raises
        ------
        ServiceNotFoundError
            This instance has no container for `service_id`.
        """
        attrs = self.find(client, service_id)
        if attrs is None:
            raise ServiceNotFoundError(
                f"no service {service_id!r} of instance {self.instance} on the Docker host"
            )
        return attrs

    def all(self, client: Any, project_id: str | None = None) -> list[dict[str, Any]]:
        """Return this instance's containers (of one project), oldest first."""
        entries = client.containers(all=True, filters={"label": self.selector(project_id)})
        found = []
        for entry in sorted(entries, key=lambda e: (e["Created"], e["Id"])):
            with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile
                found.append(client.inspect_container(entry["Id"]))
        return found

    def count_running(self, client: Any) -> int:
        """Return how many of this instance's containers run."""
        filters = {"label": self.selector(), "status": "running"}
        return len(client.containers(filters=filters))

    def stop(self, client: Any, attrs: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Mark the container undeployed (rename), stop it; return it, `None` if it is gone.

        It is renamed first, so that no status query sees it exited without the mark.
        """
        container_id = attrs["Id"]
        try:
            if not attrs["Name"].endswith(UNDEPLOYED_SUFFIX):
                client.rename(container_id, attrs["Name"].lstrip("/") + UNDEPLOYED_SUFFIX)
            client.stop(container_id, timeout=max(0, math.ceil(timeout)))
            stopped: dict[str, Any] = client.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        return stopped

    def prune(self, client: Any, project_id: str | None, older_than: float) -> list[dict[str, Any]]:
        """Remove containers (and anonymous volumes) that ended `older_than` seconds ago.

        Returns
        -------
        list[dict[str, Any]]
            The removed containers as they were just before their removal.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        filters = {"label": self.selector(project_id), "status": _ENDED}
        removed = []
        for entry in client.containers(all=True, filters=filters):
            try:
                attrs = client.inspect_container(entry["Id"])
                end = ended_at(attrs)
                if not is_ended(attrs) or (end is not None and end > cutoff):
                    continue
                client.remove_container(entry["Id"], v=True)
            except docker.errors.NotFound:
                continue
            with self._lock:
                self._ids.pop(attrs["Config"]["Labels"].get(self.labels.service_id, ""), None)
            removed.append(attrs)
        return removed
