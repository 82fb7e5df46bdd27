"""A ref or URL that git would read as an option never runs a command (issue 12, point 1)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flops_core.repos import (
    RepoFetchError,
    RepoPolicy,
    RepoPolicyError,
    fetch_repo,
    git_checkout,
)
from flops_core.repos.git_names import check_ref, check_repo_url, ref_problem

LOCAL = RepoPolicy(allow_local=True)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A local repo with one commit on `main`."""
    repo = tmp_path / "origin"
    repo.mkdir()
    (repo / "README").write_text("hello\n")
    for args in (
        ["init", "--quiet", "--initial-branch", "main"], ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "--quiet", "-m", "one"],
    ):  # fmt: skip
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def _upload_pack(marker: Path) -> str:
    return f"--upload-pack=touch {marker};git-upload-pack"


@pytest.mark.parametrize(
    "ref",
    [
        "--upload-pack=touch {marker};git-upload-pack",
        "-c",
        "main..next",
        "main@{1}",
        "a b",
        "x\ny",
        "bad~1",
        "bad^",
        "a:b",
        "what?",
        "st*r",
        "[x",
        "back\\slash",
        "/lead",
        "trail/",
        "dot.",
        "a//b",
        ".hidden",
        "x/.hidden",
        "main.lock",
        "@",
        "",
        "x" * 257,
    ],
)
def test_malformed_refs_are_refused(ref: str) -> None:
    problem = ref_problem(ref)
    assert problem is not None
    with pytest.raises(ValueError, match=r"is not a valid ref: .*allowed: a branch or tag name"):
        check_ref(ref)


@pytest.mark.parametrize(
    "ref",
    ["main", "v1.2.3", "feature/x-y_z", "refs/heads/main", "HEAD", "a11b8c45b99c", "0" * 40],
)
def test_branches_tags_and_commit_ids_are_refs(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize(
    "url", ["--upload-pack=touch x;git-upload-pack", "-oProxyCommand=x@host:r", "https://h/r\n"]
)
def test_urls_that_git_could_misread_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="the repo URL is not usable"):
        check_repo_url(url)


def test_an_option_as_ref_runs_nothing(origin: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED_ref"
    dest = tmp_path / "checkout"

    with pytest.raises(RepoPolicyError, match="is not a branch, tag or commit id: it starts"):
        fetch_repo(str(origin), dest, ref=_upload_pack(marker), policy=LOCAL)

    assert not marker.exists()
    assert not dest.exists()


def test_git_takes_the_ref_as_a_ref_even_unchecked(
    origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second line of defence: were the check gone, git still reads no option."""
    monkeypatch.setattr(git_checkout, "ref_problem", lambda ref: None)
    marker = tmp_path / "PWNED_ref"
    dest = tmp_path / "checkout"

    with pytest.raises(RepoFetchError, match="invalid refspec"):
        fetch_repo(str(origin), dest, ref=_upload_pack(marker), policy=LOCAL)

    assert not marker.exists()
    assert not dest.exists()


@pytest.mark.parametrize("policy", [RepoPolicy(), LOCAL])
def test_an_option_as_url_runs_nothing(tmp_path: Path, policy: RepoPolicy) -> None:
    marker = tmp_path / "PWNED_url"

    with pytest.raises(RepoPolicyError, match="the repo URL is not usable: it starts with '-'"):
        fetch_repo(_upload_pack(marker), tmp_path / "checkout", policy=policy)

    assert not marker.exists()


def test_git_runs_only_the_transports_the_policy_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ext::` runs a command: neither the policy nor the user's git config lets git use it."""
    marker = tmp_path / "PWNED_ext"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[protocol]\n\tallow = always\n")
    monkeypatch.setenv("HOME", str(home))
    policy = RepoPolicy(allowed_schemes=frozenset({"https", "ext"}))

    with pytest.raises(RepoFetchError, match="transport 'ext' not allowed"):
        fetch_repo(f"ext::sh -c touch% {marker}", tmp_path / "checkout", policy=policy)

    assert not marker.exists()
