"""Manager settings, read once at the edge (environment, `.env` file) and passed down."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "flops_version"]


def flops_version() -> str:
    """The installed FLOps version (`0.0.0` when run from a tree that is not installed)."""
    try:
        return version("flops")
    except PackageNotFoundError:
        return "0.0.0"


class Settings(BaseSettings):
    """Configuration of the FLOps manager.

    Every field can be set as an environment variable with the `FLOPS_` prefix (for example
    `FLOPS_ADMIN_TOKEN`, `FLOPS_DATABASE_URL`) or in the env file named by `FLOPS_ENV_FILE`
    (none by default: a `.env` in the working directory is docker-compose's, not the manager's).
    There is no default admin token: the manager refuses to start without one.
    """

    model_config = SettingsConfigDict(
        env_prefix="FLOPS_", env_file=None, env_file_encoding="utf-8", extra="ignore"
    )

    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin; at least 24 characters."
    )
    host: str = "127.0.0.1"
    port: int = Field(5072, ge=1, le=65535)
    data_dir: Path = Field(Path.home() / ".flops", description="State, logs, environments.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in data_dir. PostgreSQL works too."
    )
    orchestrator: Literal["local", "docker"] = Field(
        "local",
        description="Where project services run: `local` (processes on this machine, Python "
        "environments) or `docker` (containers from images built into `registry`).",
    )
    docker_host: str | None = Field(
        None,
        description="Docker Engine URL; default unix:///var/run/docker.sock.",
    )
    registry: str = Field(
        "127.0.0.1:5050",
        description="host:port of the image registry the builder pushes to (container backends).",
    )
    registry_tls_verify: bool = Field(
        False,
        description="Use HTTPS with certificate checks for the registry (plain HTTP if false).",
    )
    base_image: str | None = Field(
        None,
        description="Image the learner/aggregator bases start FROM; default the debootstrap base "
        "<registry>/flops/debian-python:bookworm (python:3.11-slim where a registry is reachable).",
    )
    builder_image: str | None = Field(
        None,
        description="Image of the image builder; default <registry>/flops/image-builder:<version>.",
    )
    builder_cache_volume: str = Field(
        "flops-build-cache",
        description="Named volume that keeps the image builder's Buildah storage (layer cache) "
        "between builds; it grows with every built commit: remove it when no build runs.",
    )
    builder_storage_driver: Literal["overlay", "vfs"] = Field(
        "overlay",
        description="Buildah storage driver in the builder container: `overlay` (kernel overlay "
        "on the cache volume; fast, shares layers) or `vfs` (a full copy per layer; works "
        "everywhere). Use a new cache volume when changing it.",
    )
    tracking_uri: str | None = Field(
        None,
        description="An MLflow tracking server to use instead of starting the embedded one.",
    )
    allow_local_repos: bool = Field(
        False, description="Accept local paths and file:// repo URLs (tests, offline use)."
    )
    allowed_repo_schemes: frozenset[str] = frozenset({"https", "ssh"})
    local_nodes: int = Field(
        3, ge=1, le=64, description="Learner nodes the embedded default simulates (data servers)."
    )
    mlflow_port: int = Field(5000, ge=1, le=65535)
    data_server_port: int = Field(11027, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="URL at which services reach the manager; default http://host:port."
    )

    @model_validator(mode="after")
    def _admin_token_is_strong(self) -> Settings:
        token = self.admin_token.get_secret_value() if self.admin_token else None
        if token is not None and len(token) < 24:
            raise ValueError("admin_token must be at least 24 characters long")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to SQLite under `data_dir`."""
        return self.database_url or f"sqlite:///{self.data_dir / 'flops.db'}"

    @property
    def callback_base_url(self) -> str:
        """Base URL services use to reach the manager's API."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
