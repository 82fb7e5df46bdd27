"""Repos are checked out at the ref the user names, within policy, without leaking secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flops_core.repos import RepoFetchError, RepoPolicy, RepoPolicyError, fetch_repo
from flops_core.repos.git_checkout import _split_credentials

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sklearn-digits"
LOCAL = RepoPolicy(allow_local=True)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A repo with two commits on main, a tag on the first and a branch `next`."""
    repo = tmp_path / "origin"
    shutil.copytree(EXAMPLE, repo)
    _git(repo, "init", "--quiet", "--initial-branch", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "first")
    _git(repo, "tag", "v1")
    _git(repo, "checkout", "--quiet", "-b", "next")
    (repo / "NEXT").write_text("next\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "on next")
    _git(repo, "checkout", "--quiet", "main")
    (repo / "SECOND").write_text("second\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "second")
    return repo


def test_default_is_the_remote_head(origin: Path, tmp_path: Path) -> None:
    checkout = fetch_repo(f"file://{origin}", tmp_path / "c", policy=LOCAL)
    assert checkout.commit == _git(origin, "rev-parse", "main")
    assert (checkout.path / "SECOND").exists()
    assert (checkout.path / "model_manager.py").exists()


@pytest.mark.parametrize("ref", ["next", "v1"])
def test_branch_and_tag(origin: Path, tmp_path: Path, ref: str) -> None:
    checkout = fetch_repo(str(origin), tmp_path / "c", ref=ref, policy=LOCAL)
    assert checkout.commit == _git(origin, "rev-parse", f"{ref}^{{commit}}")


@pytest.mark.parametrize("length", [40, 10])
def test_commit_ids_full_and_short(origin: Path, tmp_path: Path, length: int) -> None:
    first = _git(origin, "rev-parse", "v1^{commit}")
    checkout = fetch_repo(str(origin), tmp_path / "c", ref=first[:length], policy=LOCAL)
    assert checkout.commit == first
    assert not (checkout.path / "SECOND").exists()


def test_unknown_ref_fails_and_leaves_nothing(origin: Path, tmp_path: Path) -> None:
    with pytest.raises(RepoFetchError, match="no-such-branch"):
        fetch_repo(str(origin), tmp_path / "c", ref="no-such-branch", policy=LOCAL)
    assert not (tmp_path / "c").exists()


def test_local_repos_need_the_policy(origin: Path, tmp_path: Path) -> None:
    with pytest.raises(RepoPolicyError, match="not allowed by this manager's policy"):
        fetch_repo(f"file://{origin}", tmp_path / "c", policy=RepoPolicy())


def test_only_allowed_schemes(tmp_path: Path) -> None:
    with pytest.raises(RepoPolicyError, match="scheme 'http' is not allowed; allowed: https, ssh"):
        fetch_repo("http://git.example.org/r.git", tmp_path / "c", policy=RepoPolicy())


def test_credentials_go_to_a_header_not_the_url() -> None:
    url, env = _split_credentials("https://bob:s3cret@git.example.org/r.git")
    assert url == "https://git.example.org/r.git"
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert "s3cret" not in env["GIT_CONFIG_VALUE_0"]


def test_errors_never_show_credentials(tmp_path: Path) -> None:
    with pytest.raises(RepoFetchError) as error:
        fetch_repo(
            "https://bob:s3cret@127.0.0.1:9/r.git", tmp_path / "c", policy=RepoPolicy(), timeout=30
        )
    assert "s3cret" not in str(error.value)
    assert "127.0.0.1:9" in str(error.value)
