"""Manager settings, read once at the edge (environment, `.env` file) and passed down."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "flops_version", "url_host"]


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
        env_prefix="FLOPS_",
        env_file=None,
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
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
    orchestrator: Literal["local", "docker", "oakestra"] = Field(
        "local",
        description="Where project services run: `local` (processes on this machine, Python "
        "environments), `docker` (containers from images built into `registry`) or "
        "`oakestra` (services deployed through the Oakestra root orchestrator at "
        "`oakestra_url`).",
    )
    service_runtime: Literal["auto", "images", "environment"] = Field(
        "auto",
        description="What project services run: `images` built into `registry`, or a Python "
        "`environment` built on this machine (only for workers that share this machine's "
        "file system, e.g. a one-host Oakestra). `auto`: environment on `local`, images "
        "elsewhere.",
    )
    clusters: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Cluster names for hierarchical FL on `local` and `docker` (comma-separated "
        "in the environment, e.g. `edgeA,edgeB`); Oakestra reports its own clusters.",
    )
    oakestra_url: str | None = Field(
        None, description="The Oakestra root orchestrator's API, e.g. http://root:10000."
    )
    oakestra_username: str | None = Field(
        None, description="Oakestra account the manager deploys with (no default)."
    )
    oakestra_password: SecretStr | None = Field(
        None, description="Password of `oakestra_username`; never logged."
    )
    oakestra_retries: int = Field(
        4, ge=0, le=20, description="Retries of an Oakestra call after a connection error or 5xx."
    )
    oakestra_backoff_s: float = Field(
        0.5, ge=0, le=60, description="First retry delay; doubles with every retry."
    )
    oakestra_poll_s: float = Field(
        1.0, gt=0, le=60, description="How often the status of Oakestra services is polled."
    )
    oakestra_schedule_timeout_s: float = Field(
        300.0, gt=0, description="How long a service may wait for Oakestra to start it."
    )
    accept_oakestra_tokens: bool = Field(
        False,
        description="Also accept Oakestra access tokens (what `oak addon flops` sends): each is "
        "checked against `oakestra_url`; the Oakestra user becomes the customer.",
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
        "between builds; see `builder_cache_max_mb` for its size.",
    )
    builder_cache_max_mb: int = Field(
        20000,
        ge=0,
        description="Size in MB (10^6 bytes) above which the image builder prunes its Buildah "
        "storage after a build: untagged images first (older builds' images and cached "
        "layers), then the least recently built images (pulled bases), until it is under the "
        "limit. Skipped while another build uses the storage. 0: never prune.",
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
    public_tracking_uri: str | None = Field(
        None,
        description="The MLflow URL project services (aggregators, learners, builders, "
        "inference servers) are given, as their hosts reach it; default the URL the manager "
        "uses (`tracking_uri`, else http://<mlflow_host>:<mlflow_port>). Backends whose "
        "services run on other hosts refuse a loopback address here.",
    )
    allow_local_repos: bool = Field(
        False, description="Accept local paths and file:// repo URLs (tests, offline use)."
    )
    allowed_repo_schemes: frozenset[str] = frozenset({"https", "ssh"})
    local_nodes: int = Field(
        3, ge=1, le=64, description="Learner nodes the embedded default simulates (data servers)."
    )
    mlflow_port: int = Field(5000, ge=1, le=65535)
    mlflow_host: str = Field(
        "127.0.0.1",
        description="Address the embedded MLflow server binds to; an address of this host "
        "that the workers reach (or 0.0.0.0 with `public_tracking_uri`) when services run on "
        "other hosts.",
    )
    data_server_port: int = Field(11027, ge=1, le=65535)
    node_stale_after_s: float = Field(
        45.0,
        gt=0,
        description="Seconds after a learner node's last report from which it is shown stale "
        "and gets no new learners (data servers report every 15 s by default).",
    )
    datasets_dir: Path | None = Field(
        None,
        description="The only directory from which `POST /api/flops/mocks` reads .parquet and "
        ".csv dataset files (named relative to it, or by an absolute path inside it); default "
        "<data_dir>/datasets.",
    )
    hub_datasets: bool = Field(
        True,
        description="Let `POST /api/flops/mocks` load Hugging Face hub datasets by name (`mnist`, "
        "`cifar10` as the original FLOps SLAs name them, or any `owner/name`), with the "
        "`datasets` library, cached under <data_dir>/huggingface. False: only the bundled "
        "datasets and files in `datasets_dir`.",
    )
    hub_endpoint: str = Field(
        "https://huggingface.co",
        validation_alias=AliasChoices("HF_ENDPOINT", "hub_endpoint"),
        description="The Hugging Face hub; the standard variable `HF_ENDPOINT` (no FLOPS_ "
        "prefix), e.g. a mirror.",
    )
    hub_offline: bool = Field(
        False,
        validation_alias=AliasChoices("HF_HUB_OFFLINE", "hub_offline"),
        description="The standard variable `HF_HUB_OFFLINE`: load hub datasets only from the "
        "cache; a dataset not cached is a 503.",
    )
    hub_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds one request to the hub may take: the check made while a mock-data "
        "request is answered (a 503 after at most this long), and each request of a download.",
    )
    hub_load_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Seconds a mock-data job may spend loading (downloading, preparing) a hub "
        "dataset before it fails.",
    )
    public_url: str | None = Field(
        None, description="URL at which services reach the manager; default http://host:port."
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1_024,
        description="Largest request body accepted, in bytes (default 1 MiB); a larger one is "
        "answered 413 before it is parsed, with or without a Content-Length.",
    )

    @model_validator(mode="after")
    def _admin_token_is_strong(self) -> Settings:
        token = self.admin_token.get_secret_value() if self.admin_token else None
        if token is not None and len(token) < 24:
            raise ValueError("admin_token must be at least 24 characters long")
        return self

    @field_validator("clusters", mode="before")
    @classmethod
    def _split_clusters(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _oakestra_is_configured(self) -> Settings:
        needs_oakestra = self.orchestrator == "oakestra" or self.accept_oakestra_tokens
        if needs_oakestra and not self.oakestra_url:
            raise ValueError(
                "oakestra_url is required with orchestrator=oakestra or accept_oakestra_tokens: "
                "set FLOPS_OAKESTRA_URL, e.g. http://root:10000"
            )
        if self.orchestrator == "oakestra" and not (
            self.oakestra_username and self.oakestra_password
        ):
            raise ValueError(
                "orchestrator=oakestra needs an Oakestra account: set FLOPS_OAKESTRA_USERNAME "
                "and FLOPS_OAKESTRA_PASSWORD"
            )
        for name in self.clusters:
            if not name.isalnum() or len(name) > 30:
                raise ValueError(
                    f"cluster name {name!r} in clusters must be 1-30 letters or digits"
                )
        return self

    @property
    def uses_images(self) -> bool:
        """Whether project services run from container images (else local environments)."""
        if self.service_runtime == "auto":
            return self.orchestrator != "local"
        return self.service_runtime == "images"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to SQLite under `data_dir`."""
        return self.database_url or f"sqlite:///{self.data_dir / 'flops.db'}"

    @property
    def services_tracking_url(self) -> str:
        """The MLflow URL project services are given (`public_tracking_uri` or its default)."""
        if self.public_tracking_uri:
            return self.public_tracking_uri.rstrip("/")
        if self.tracking_uri:
            return self.tracking_uri.rstrip("/")
        return f"http://{url_host(self.mlflow_host)}:{self.mlflow_port}"

    @property
    def callback_base_url(self) -> str:
        """Base URL services use to reach the manager's API."""
        return (self.public_url or f"http://{url_host(self.host)}:{self.port}").rstrip("/")


def url_host(host: str) -> str:
    """`host` as it stands in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
