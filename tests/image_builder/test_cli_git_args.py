"""The image builder run by hand: a commit or repo URL that git would read as an option runs
nothing and fails at the clone step saying why (issue 12, point 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.image_builder.conftest import git_repo


def _build(repo_url: str, commit: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    env["FLOPS_REPO_URL"] = repo_url
    args = [
        f"--commit={commit}", "--flavor", "sklearn", "--platforms", "linux/amd64",
        "--registry", "127.0.0.1:5050", "--customer", "c", "--project-id", "p1",
    ]  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "image_builder", "build", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("where", ["commit", "repo_url"])
def test_an_option_as_commit_or_url_runs_nothing(tmp_path: Path, where: str) -> None:
    # Prepare
    commit = git_repo(tmp_path / "repo", {"README": "x\n"})
    marker = tmp_path / "PWNED"
    probe = f"--upload-pack=touch {marker};git-upload-pack"
    url = (tmp_path / "repo").as_uri()

    # Execute
    result = _build(probe if where == "repo_url" else url, probe if where == "commit" else commit)

    # Assert
    assert result.returncode == 1, result.stderr
    assert "image build failed at step clone" in result.stderr
    expected = "is not a branch, tag or commit id" if where == "commit" else "not usable"
    assert expected in result.stderr
    assert not marker.exists()
