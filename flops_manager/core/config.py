"""Manager settings, read once at the edge (environment, `.env` file) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration of the FLOps manager.

    Every field can be set as an environment variable with the `FLOPS_` prefix (for example
    `FLOPS_ADMIN_TOKEN`, `FLOPS_DATABASE_URL`) or in the env file named by `FLOPS_ENV_FILE`
    (default `.env` in the working directory). There is no default admin token: the manager
    refuses to start without one.
    """

    model_config = SettingsConfigDict(
        env_prefix="FLOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
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
    orchestrator: Literal["local"] = "local"
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
