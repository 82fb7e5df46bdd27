"""Check out a Git repository at a ref with the `git` command, never exposing credentials.

Credentials in an HTTPS URL (`https://user:token@host/...`) are taken out of the URL before
`git` runs and handed to it as an HTTP header through `GIT_CONFIG_*` environment variables,
so they appear neither on a command line (visible in `ps`) nor in `.git/config`, logs or
error messages. `git` never prompts (`GIT_TERMINAL_PROMPT=0`) and every call has a timeout.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from flops_utils.logs import get_logger
from flops_utils.redact import redact_url

__all__ = ["Checkout", "RepoFetchError", "RepoPolicy", "RepoPolicyError", "fetch_repo"]

_log = get_logger("manager.repos")
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


class RepoPolicyError(ValueError):
    """Raised when a repo URL is not allowed by the policy (scheme, local paths); permanent."""


class RepoFetchError(RuntimeError):
    """Raised when cloning or checking out fails; the message has git's words, no secrets."""

    retryable = True


@dataclass(frozen=True)
class RepoPolicy:
    """Which repo URLs may be fetched.

    Parameters
    ----------
    allowed_schemes : frozenset[str]
        URL schemes accepted for remote repos (`https`, `ssh`, `git`, `http`).
    allow_local : bool
        Whether local paths and `file://` URLs are accepted; needed for tests and offline use,
        off by default because it lets API callers read any repository on the manager's host.
    """

    allowed_schemes: frozenset[str] = field(default_factory=lambda: frozenset({"https", "ssh"}))
    allow_local: bool = False

    def check(self, url: str) -> None:
        """Raise `RepoPolicyError` if `url` may not be fetched."""
        if _is_local(url):
            if not self.allow_local:
                raise RepoPolicyError(
                    "local repository paths and file:// URLs are not allowed by this manager's "
                    "policy; use an https or ssh URL (or enable allow_local_repos)"
                )
            return
        scheme = urlsplit(url).scheme or ("ssh" if re.match(r"^[\w.-]+@[\w.-]+:", url) else "")
        if scheme not in self.allowed_schemes:
            raise RepoPolicyError(
                f"repo URL scheme {scheme or '(none)'!r} is not allowed; "
                f"allowed: {', '.join(sorted(self.allowed_schemes))}"
            )


@dataclass(frozen=True)
class Checkout:
    """A repo checked out at one commit."""

    path: Path
    commit: str
    ref: str | None


def fetch_repo(
    url: str,
    dest: Path,
    *,
    ref: str | None = None,
    policy: RepoPolicy,
    timeout: float = 300.0,
) -> Checkout:
    """Check out `url` at `ref` (branch, tag or commit; default: the remote's HEAD) into `dest`.

    `dest` must not exist yet; on failure it is removed again.

    Raises
    ------
    RepoPolicyError
        The URL is not allowed.
    RepoFetchError
        git failed (unreachable, unknown ref, authentication); the message says which.
    """
    policy.check(url)
    remote, env = _split_credentials(url)
    safe_url = redact_url(url)
    dest.mkdir(parents=True)
    try:
        _git(["init", "--quiet"], dest, env, timeout, safe_url)
        _git(["remote", "add", "origin", remote], dest, env, timeout, safe_url)
        wanted = ref or "HEAD"
        try:
            _git(
                ["fetch", "--quiet", "--depth", "1", "origin", wanted], dest, env, timeout, safe_url
            )
            target = "FETCH_HEAD"
        except RepoFetchError:
            if not _SHA.match(wanted):
                raise
            # Not every server lets a client fetch a commit by id; fetch everything instead.
            _git(["fetch", "--quiet", "--tags", "origin"], dest, env, timeout, safe_url)
            target = wanted
        _git(["checkout", "--quiet", "--detach", target], dest, env, timeout, safe_url)
        commit = _git(["rev-parse", "HEAD"], dest, env, timeout, safe_url).strip()
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    _log.info("checked out %s at %s (%s)", safe_url, commit[:12], ref or "default branch")
    return Checkout(path=dest, commit=commit, ref=ref)


def _git(args: list[str], cwd: Path, env: dict[str, str], timeout: float, safe_url: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as e:
        raise RepoFetchError("git is not installed on the manager's host") from e
    except subprocess.TimeoutExpired as e:
        raise RepoFetchError(f"git {args[0]} of {safe_url} took longer than {timeout:g} s") from e
    if result.returncode != 0:
        lines = [redact_url(line) for line in result.stderr.strip().splitlines()[-5:]]
        detail = "; ".join(line for line in lines if line) or f"exit code {result.returncode}"
        raise RepoFetchError(f"git {args[0]} of {safe_url} failed: {detail}")
    return result.stdout


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }
    for key in ("SSL_CERT_FILE", "GIT_SSL_CAINFO", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND"):
        if key in os.environ:
            env[key] = os.environ[key]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.password is None:
        return url, env
    user = unquote(parts.username or "")
    token = base64.b64encode(f"{user}:{unquote(parts.password)}".encode()).decode()
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    env.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}",
        }
    )
    return urlunsplit(parts._replace(netloc=host)), env


def _is_local(url: str) -> bool:
    return url.startswith(("file://", "/", "./", "../")) or Path(url).exists()
