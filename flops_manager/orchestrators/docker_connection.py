"""The `docker` backend's link to one Docker daemon: lazy client, host facts, error translation.

The client is created on first use, not in the constructor, so that a manager starts (and
reports an unhealthy orchestrator) while dockerd is down; a failed connection is retried on the
next call. Connection failures and timeouts become `OrchestratorUnavailableError` with a
message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.utils
import requests.exceptions

from flops_core.redact import redact_url
from flops_manager.orchestrators.orchestrator import OrchestratorError, OrchestratorUnavailableError

__all__ = ["DEFAULT_BASE_URL", "DockerConnection", "DockerHost", "platform_of"]

DEFAULT_BASE_URL = "unix:///var/run/docker.sock"
"""Where the daemon listens when the manager configures no `FLOPS_DOCKER_HOST`."""

_FIX = "start dockerd or set FLOPS_DOCKER_HOST"
_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm/v7",
    "armv6l": "arm/v6",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def platform_of(os_type: str, architecture: str) -> str:
    """Return the OCI platform (`linux/amd64`) of a daemon's `OSType` and `Architecture`."""
    return f"{os_type or 'linux'}/{_ARCHITECTURES.get(architecture, architecture)}"


@dataclass(frozen=True)
class DockerHost:
    """What `docker info` says about the Docker host."""

    host_id: str
    name: str
    platform: str
    vcpus: int
    memory_mb: int
    server_version: str

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> DockerHost:
        """Build from the daemon's `GET /info` answer."""
        return cls(
            host_id=str(info.get("ID") or info.get("Name") or "docker"),
            name=str(info.get("Name") or "docker"),
            platform=platform_of(str(info.get("OSType", "")), str(info.get("Architecture", ""))),
            vcpus=int(info.get("NCPU") or 0),
            memory_mb=int(info.get("MemTotal") or 0) // 2**20,
            server_version=str(info.get("ServerVersion", "unknown")),
        )


def _reason(error: BaseException) -> str:
    """A short human reason for a connection failure (docker-py's texts are long)."""
    text = str(error)
    if "FileNotFoundError" in text or "No such file" in text:
        return "no socket at that path"
    if "PermissionError" in text or "Permission denied" in text:
        return "permission denied: run the manager as a user allowed to use the socket"
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(error, requests.exceptions.Timeout) or "timed out" in text:
        return "no answer in time"
    return text


class DockerConnection:
    """One lazily created `docker.APIClient` for a daemon; thread-safe.

    Parameters
    ----------
    base_url : str | None
        The daemon's address (`unix:///...`, `tcp://host:2375`, `ssh://user@host`);
        `None` is `DEFAULT_BASE_URL`. Environment variables such as `DOCKER_HOST` are not read.
    timeout : float
        Seconds any API call may take (a stop call adds its own stop timeout).

    Raises
    ------
    ValueError
        `base_url` is not an address docker-py understands.
    """

    def __init__(self, base_url: str | None, timeout: float) -> None:
        self.base_url = base_url or DEFAULT_BASE_URL
        try:
            docker.utils.parse_host(self.base_url)
        except docker.errors.DockerException as e:
            raise ValueError(f"invalid Docker daemon address {self.base_url!r}: {e}") from e
        self.display_url = redact_url(self.base_url)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._client: Any = None
        self._host: DockerHost | None = None
        self._closed = False

    def unreachable(self, error: BaseException) -> OrchestratorUnavailableError:
        """Return the error that says the daemon cannot be reached, and how to fix that."""
        return OrchestratorUnavailableError(
            f"the Docker daemon at {self.display_url} is not reachable ({_reason(error)}): {_FIX}"
        )

    def client(self) -> Any:
        """Return the `docker.APIClient`, connecting on first use.

        Raises
        ------
        OrchestratorUnavailableError
            The daemon cannot be reached (the next call tries again).
        OrchestratorError
            The connection was closed.
        """
        with self._lock:
            if self._closed:
                raise OrchestratorError("the docker orchestrator is closed")
            if self._client is None:
                try:
                    self._client = docker.APIClient(
                        base_url=self.base_url, version="auto", timeout=self._timeout
                    )
                except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
                    raise self.unreachable(e) from e
            return self._client

    @contextmanager
    def calls(self) -> Iterator[Any]:
        """Yield the client; connection errors and daemon failures in the block are translated.

        Errors the block handles itself (e.g. `docker.errors.NotFound`) never reach here. A
        `docker.errors.APIError` the block lets through becomes `OrchestratorUnavailableError`.
        """
        client = self.client()
        try:
            yield client
        except docker.errors.APIError as e:
            raise OrchestratorUnavailableError(
                f"the Docker daemon at {self.display_url} failed: {e.explanation or e}"
            ) from e
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            raise self.unreachable(e) from e

    def host(self) -> DockerHost:
        """Return the Docker host's facts, asking the daemon once (see `refresh_host`)."""
        host = self._host
        return host if host is not None else self.refresh_host()

    def refresh_host(self) -> DockerHost:
        """Ask the daemon for its facts now (`docker info`) and remember them."""
        with self.calls() as client:
            host = DockerHost.from_info(client.info())
        self._host = host
        return host

    def close(self) -> None:
        """Close the client's connections; later calls raise `OrchestratorError`."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()
