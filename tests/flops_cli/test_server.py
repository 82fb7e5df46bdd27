"""`flops server`'s admin token file, the manager's environment, and the demo's child manager."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flops_cli import server as server_module
from flops_cli.demo import EXAMPLE, make_git_repo
from flops_cli.main import app
from flops_cli.manager_process import ManagerProcess, choose_ports
from flops_cli.server import ensure_admin_token, manager_environment
from flops_cli.ui import resolve_token


def test_the_admin_token_is_created_0600_once_and_reused(tmp_path: Path) -> None:
    # Execute
    first, created = ensure_admin_token(tmp_path / "data")
    again, created_again = ensure_admin_token(tmp_path / "data")
    # Assert
    path = tmp_path / "data" / "admin-token"
    assert created and not created_again
    assert first == again and len(first) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == first + "\n"


def test_an_admin_token_from_the_environment_wins_and_no_file_is_written(tmp_path: Path) -> None:
    token = "x" * 30
    env, token_file = manager_environment(
        base={"FLOPS_ADMIN_TOKEN": token, "FLOPS_PORT": "6000"}, data_dir=tmp_path, host="0.0.0.0"
    )
    assert token_file is None
    assert env["FLOPS_ADMIN_TOKEN"] == token
    assert env["FLOPS_PORT"] == "6000"  # not given: left as it was
    assert env["FLOPS_HOST"] == "0.0.0.0"
    assert "FLOPS_ALLOW_LOCAL_REPOS" not in env
    assert not (tmp_path / "admin-token").exists()


def test_the_cli_reads_the_token_file_of_its_data_dir(tmp_path: Path) -> None:
    token, _ = ensure_admin_token(tmp_path)
    assert resolve_token(None, {"FLOPS_DATA_DIR": str(tmp_path)}) == token
    assert resolve_token("explicit", {"FLOPS_DATA_DIR": str(tmp_path)}) == "explicit"
    assert resolve_token(None, {"FLOPS_DATA_DIR": str(tmp_path / "none")}) is None


def test_flops_server_execs_the_manager_with_the_token_in_its_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: capture the exec instead of replacing the test process.
    started: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(server_module.os, "execve", lambda *call: started.append(call))
    monkeypatch.delenv("FLOPS_ADMIN_TOKEN", raising=False)
    args = ["server", "--data-dir", str(tmp_path), "--port", "6123", "--allow-local-repos"]
    # Execute
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    # Assert
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    token = (tmp_path / "admin-token").read_text().strip()
    (_, argv, env), (_, _, env_again) = started
    assert argv[1:] == ["-m", "flops_manager"]
    assert env["FLOPS_ADMIN_TOKEN"] == env_again["FLOPS_ADMIN_TOKEN"] == token
    assert env["FLOPS_PORT"] == "6123" and env["FLOPS_ALLOW_LOCAL_REPOS"] == "true"
    assert env["FLOPS_DATA_DIR"] == str(tmp_path)
    assert str(tmp_path / "admin-token") in first.stderr
    assert token not in first.output + first.stderr


def test_the_demos_manager_gets_its_token_and_ports_through_the_environment(tmp_path: Path) -> None:
    ports = choose_ports(3)
    manager = ManagerProcess(
        data_dir=tmp_path,
        ports=ports,
        token="t" * 30,
        base_env={"FLOPS_DATABASE_URL": "x", "A": "1"},
    )
    env = manager.environment()
    assert env["FLOPS_ADMIN_TOKEN"] == "t" * 30
    assert "FLOPS_DATABASE_URL" not in env and env["A"] == "1"
    assert (
        len({ports.manager, ports.mlflow, *range(ports.data_server, ports.data_server + 8)}) == 10
    )
    assert env["FLOPS_DATA_SERVER_PORT"] == str(ports.data_server)
    assert env["FLOPS_ALLOW_LOCAL_REPOS"] == "true"


def test_the_demo_repo_is_a_git_repo_of_the_example(tmp_path: Path) -> None:
    url = make_git_repo(EXAMPLE, tmp_path / "repo")
    assert url == (tmp_path / "repo").as_uri()
    listed = subprocess.run(
        ["git", "ls-files"], cwd=tmp_path / "repo", capture_output=True, text=True, check=True
    ).stdout.split()
    assert "model_manager.py" in listed
    assert os.path.isdir(tmp_path / "repo" / ".git")
