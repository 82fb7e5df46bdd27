"""Fetching ML repos: a checkout of a Git repository at a branch, tag or commit."""

from flops_core.repos.git_checkout import (
    Checkout,
    RepoFetchError,
    RepoPolicy,
    RepoPolicyError,
    fetch_repo,
)

__all__ = ["Checkout", "RepoFetchError", "RepoPolicy", "RepoPolicyError", "fetch_repo"]
