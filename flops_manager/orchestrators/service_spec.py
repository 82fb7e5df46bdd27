"""The orchestrator-neutral description of one service: what to run, where and with what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flops_core.redact import redact_url

__all__ = [
    "SECRET_KEY_MARKERS",
    "Placement",
    "PortMapping",
    "Resources",
    "RestartPolicy",
    "ServiceSpec",
    "is_secret_key",
    "redact_env",
]

SECRET_KEY_MARKERS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL")
"""An environment variable whose name contains one of these (any case) holds a secret."""

_MASK = "***"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")

_CONFIG = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def is_secret_key(key: str) -> bool:
    """Return whether the environment variable `key` looks like it holds a secret."""
    upper = key.upper()
    return any(marker in upper for marker in SECRET_KEY_MARKERS)


def redact_env(env: dict[str, str]) -> dict[str, str]:
    """Return `env` with secret-looking values masked and credentials removed from URLs."""
    redacted: dict[str, str] = {}
    for key, value in env.items():
        if is_secret_key(key):
            redacted[key] = _MASK
            continue
        try:
            redacted[key] = redact_url(value)
        except ValueError:  # not parseable as a URL: keep the plain value
            redacted[key] = value
    return redacted


class PortMapping(BaseModel):
    """A port the service listens on (`container_port`) and where it is reachable."""

    model_config = _CONFIG

    container_port: int = Field(ge=1, le=65535)
    host_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port on the node; `None` = `container_port`."
    )
    protocol: Literal["tcp", "udp"] = "tcp"

    @property
    def published_port(self) -> int:
        """The port clients connect to on the node."""
        return self.container_port if self.host_port is None else self.host_port


class Resources(BaseModel):
    """Resource requests of a service; `None` means no request (backend default)."""

    model_config = _CONFIG

    memory_mb: int | None = Field(default=None, gt=0)
    vcpus: float | None = Field(default=None, gt=0)
    storage_mb: int | None = Field(default=None, gt=0)


class Placement(BaseModel):
    """Where a service may run; `None` fields leave the choice to the orchestrator."""

    model_config = _CONFIG

    cluster: str | None = None
    node: str | None = None
    required_addon: str | None = Field(
        default=None, description="A node addon the node must offer, e.g. `FLOps-learner`."
    )


class RestartPolicy(BaseModel):
    """What happens when a service that is not one-shot exits with a non-zero code."""

    model_config = _CONFIG

    policy: Literal["never", "on_failure"] = "never"
    max_restarts: int = Field(default=3, ge=0, description="Restarts before it is `failed`.")


class ServiceSpec(BaseModel):
    """An orchestrator-neutral service: the same spec deploys on `local`, `docker`, `oakestra`.

    Secrets belong in `env` (never in `command`): `repr()`, `str()` and `redacted()` mask the
    values of keys that look secret (`is_secret_key`), and validation errors never echo input.

    Parameters
    ----------
    name : str
        `^[a-zA-Z0-9]{1,30}$`, Oakestra's rule for service names.
    project_id : str
        The project the service belongs to.
    role : str
        What the service is to FLOps: `aggregator`, `learner`, `mlflow`, `data_server`,
        `builder`, ...
    image : str | None
        Container image (container backends); `local` ignores it.
    environment_path : pathlib.Path | None
        A local Python environment (`local` runs `<environment_path>/bin/python` for
        commands that start with `python` and puts its `bin/` first on `PATH`).
    command : list[str]
        Program and arguments; empty means the image's default (container backends only).
    env : dict[str, str]
        Environment variables of the service.
    resources, platforms, placement, ports
        Requests and constraints; `platforms` are OCI platforms such as `linux/amd64`.
    one_shot : bool
        The service is a job: exit code 0 ends it as `completed`; it is never restarted.
    privileged : bool
        Run with extended privileges (container backends).
    restart : RestartPolicy
        For services that are not one-shot.
    volumes : dict[str, str]
        Named volumes (name → absolute path in the service) that outlive the service, e.g. a
        build cache; container backends only, `local` ignores them.
    working_dir : pathlib.Path | None
        Working directory; `None` is the backend's default.
    """

    model_config = _CONFIG

    name: str = Field(pattern=r"^[a-zA-Z0-9]{1,30}$")
    project_id: str = Field(min_length=1)
    role: str = Field(min_length=1)
    image: str | None = None
    environment_path: Path | None = None
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    platforms: list[str] = Field(default_factory=list)
    placement: Placement = Field(default_factory=Placement)
    ports: list[PortMapping] = Field(default_factory=list)
    one_shot: bool = False
    privileged: bool = False
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    working_dir: Path | None = None
    volumes: dict[str, str] = Field(default_factory=dict)

    @field_validator("volumes")
    @classmethod
    def _check_volumes(cls, volumes: dict[str, str]) -> dict[str, str]:
        for name, path in volumes.items():
            if not _VOLUME.match(name):
                raise ValueError(f"invalid volume name {name!r}, expected e.g. 'flops-cache'")
            if not path.startswith("/"):
                raise ValueError(f"volume {name} must be mounted at an absolute path, not {path!r}")
        return volumes

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not _ENV_KEY.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
            if "\0" in value:
                raise ValueError(f"environment variable {key} contains a NUL character")
        return env

    @field_validator("command")
    @classmethod
    def _check_command(cls, command: list[str]) -> list[str]:
        if any("\0" in arg for arg in command):
            raise ValueError("command arguments must not contain NUL characters")
        return command

    @field_validator("platforms")
    @classmethod
    def _check_platforms(cls, platforms: list[str]) -> list[str]:
        for platform in platforms:
            if not _PLATFORM.match(platform):
                raise ValueError(f"invalid platform {platform!r}, expected e.g. 'linux/amd64'")
        return platforms

    @model_validator(mode="after")
    def _check_restart(self) -> ServiceSpec:
        if self.one_shot and self.restart.policy != "never":
            raise ValueError("one-shot services are never restarted: use restart policy 'never'")
        return self

    def redacted(self) -> dict[str, Any]:
        """Return the spec as JSON-ready data with secret env values masked, for logs/events."""
        data = self.model_dump(mode="json")
        data["env"] = redact_env(self.env)
        return data

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, redact_env(value) if key == "env" else value
