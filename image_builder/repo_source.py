"""The repo side of a build: clone it at the commit, and check it against the ML-repo contract."""

from __future__ import annotations

from pathlib import Path

from flops_core.redact import redact_url
from flops_core.repo_checker import RepoReport, check_repo
from flops_core.repos import RepoFetchError, RepoPolicy, RepoPolicyError, fetch_repo
from image_builder.errors import CloneError, RepoCheckError

__all__ = ["check_checkout", "fetch_repo_at"]

# The manager applied its repo policy before starting the builder; any URL it passes is fine.
_ANY_REPO = RepoPolicy(allowed_schemes=frozenset({"https", "http", "ssh", "git"}), allow_local=True)


def fetch_repo_at(repo_url: str, commit: str, dest: Path) -> str:
    """Clone `repo_url` at `commit` into `dest`; return the full commit id.

    Raises
    ------
    CloneError
        When git fails or the URL is unusable; the message has no credentials.
    """
    try:
        checkout = fetch_repo(repo_url, dest, ref=commit, policy=_ANY_REPO, timeout=600.0)
    except (RepoFetchError, RepoPolicyError) as e:
        raise CloneError(str(e)) from e
    if not checkout.commit.startswith(commit.lower()):
        raise CloneError(f"{redact_url(repo_url)} at {commit} is commit {checkout.commit}")
    return checkout.commit


def check_checkout(repo_dir: Path) -> RepoReport:
    """Check the checkout against the ML-repo contract; return the report when it follows it.

    Raises
    ------
    RepoCheckError
        Naming the first problem; `output` lists every problem and warning.
    """
    report = check_repo(repo_dir)
    if report.ok:
        return report
    first = report.problems[0].message
    more = f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
    raise RepoCheckError(
        f"the repo breaks the ML-repo contract: {first}{more}",
        output=report.format_problems().splitlines(),
    )
