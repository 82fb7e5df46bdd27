"""Settings come from the environment or an env file; tokens are random and kept as hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flops_core.api_tokens import generate_token, hash_token, tokens_match
from flops_manager.core.config import Settings


def test_no_admin_token_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOPS_ADMIN_TOKEN", raising=False)
    assert Settings().admin_token is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOPS_ADMIN_TOKEN", "a" * 32)
    monkeypatch.setenv("FLOPS_PORT", "6000")
    monkeypatch.setenv("FLOPS_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "a" * 32
    assert "a" * 32 not in repr(settings)
    assert settings.port == 6000
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'flops.db'}"
    assert settings.callback_base_url == "http://127.0.0.1:6000"


def test_settings_from_the_env_file_named_not_from_a_compose_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOPS_ADMIN_TOKEN", raising=False)
    (tmp_path / "flops.env").write_text("FLOPS_ALLOW_LOCAL_REPOS=true\nFLOPS_MLFLOW_PORT=5111\n")
    (tmp_path / ".env").write_text("FLOPS_ORCHESTRATOR=docker\n")  # docker-compose's

    named = Settings(_env_file=tmp_path / "flops.env")
    default = Settings()

    assert named.allow_local_repos is True
    assert named.mlflow_port == 5111
    assert default.orchestrator == named.orchestrator == "local"


def test_short_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOPS_ADMIN_TOKEN", "admin")
    with pytest.raises(ValidationError, match="at least 24 characters"):
        Settings()


def test_tokens_are_random_and_hashed() -> None:
    first, second = generate_token(), generate_token()
    assert first != second and first.startswith("flops_") and len(first) > 40
    assert hash_token(first) == hash_token(first) != hash_token(second)
    assert first not in hash_token(first)
    assert tokens_match(first, first) and not tokens_match(first, second)
