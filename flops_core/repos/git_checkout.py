"""Check out a Git repository at a ref with the `git` command, never exposing credentials.

Credentials in an HTTPS URL (`https://user:token@host/...`) are taken out of the URL before
`git` runs and handed to it as an HTTP header through `GIT_CONFIG_*` environment variables,
so they appear neither on a command line (visible in `ps`) nor in `.git/config`, logs or
error messages. `git` never prompts (`GIT_TERMINAL_PROMPT=0`) and every call has a timeout.

User input never reaches `git` as an option: the URL and the ref are checked first
(`git_names`: no leading `-`, refs by `git check-ref-format`'s rules or a commit id), every
call puts them after `--end-of-options`, the checkout is of a commit id `git` itself
resolved, and `GIT_ALLOW_PROTOCOL` limits `git` to the transports the policy allows (no
`ext::` commands, no `file://` unless local repos are allowed).
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from flops_core.commands import CommandTimeoutError, run_command
from flops_core.errors import PermanentError, TemporaryError
from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_core.repos.git_names import ref_problem, repo_url_problem

__all__ = ["Checkout", "RepoFetchError", "RepoPolicy", "RepoPolicyError", "fetch_repo"]

_log = get_logger("manager.repos")
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
_DATA_TRANSPORTS = frozenset({"https", "http", "ssh", "git"})


class RepoPolicyError(PermanentError, ValueError):
    """Raised when a repo URL is not allowed by the policy (scheme, local paths); permanent."""


class RepoFetchError(TemporaryError, RuntimeError):
    """Raised when cloning or checking out fails; the message has git's words, no secrets."""


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
        problem = repo_url_problem(url)
        if problem is not None:
            raise RepoPolicyError(
                f"the repo URL is not usable: {problem}; give the repository's https or ssh URL"
            )
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

    def protocols(self) -> str:
        """The transports `git` may use under this policy, as `GIT_ALLOW_PROTOCOL` lists them.

        Only transports that fetch data are ever listed (`ext::` runs a command, whatever
        the allowed schemes say).
        """
        allowed = set(self.allowed_schemes) & _DATA_TRANSPORTS
        return ":".join(sorted(allowed | ({"file"} if self.allow_local else set())))


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
        The URL is not allowed, or `ref` is not a branch, tag or commit id.
    RepoFetchError
        git failed (unreachable, unknown ref, authentication); the message says which.
    """
    policy.check(url)
    if ref is not None and (problem := ref_problem(ref)) is not None:
        raise RepoPolicyError(
            f"ref {ref[:80]!r} is not a branch, tag or commit id: {problem} (a ref may not "
            "start with '-' and follows git check-ref-format's rules)"
        )
    remote, env = _split_credentials(url)
    env["GIT_ALLOW_PROTOCOL"] = policy.protocols()
    safe_url = redact_url(url)
    dest.mkdir(parents=True)
    run = functools.partial(_git, cwd=dest, env=env, timeout=timeout, safe_url=safe_url)
    try:
        run(["init", "--quiet"])
        run(["remote", "add", "--end-of-options", "origin", remote])
        wanted = ref or "HEAD"
        try:
            run(["fetch", "--quiet", "--depth", "1", "--end-of-options", "origin", wanted])
            target = "FETCH_HEAD"
        except RepoFetchError:
            if not _SHA.match(wanted):
                raise
            # Not every server lets a client fetch a commit by id; fetch everything instead.
            run(["fetch", "--quiet", "--tags", "--end-of-options", "origin"])
            target = wanted
        # `checkout` of git 2.39 has no --end-of-options: give it the commit id git resolved.
        commit = run(["rev-parse", "--verify", "--end-of-options", f"{target}^{{commit}}"])
        commit = commit.strip()
        run(["checkout", "--quiet", "--detach", commit, "--"])
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    _log.info("checked out %s at %s (%s)", safe_url, commit[:12], ref or "default branch")
    return Checkout(path=dest, commit=commit, ref=ref)


def _git(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float, safe_url: str) -> str:
    try:
        result = run_command(["git", *args], timeout=timeout, merge_output=False, cwd=cwd, env=env)
    except FileNotFoundError as e:
        raise RepoFetchError("git is not installed on the manager's host") from e
    except CommandTimeoutError as e:
        raise RepoFetchError(f"git {args[0]} of {safe_url} took longer than {timeout:g} s") from e
    if result.returncode != 0:
        lines = [redact_url(line) for line in result.errors.strip().splitlines()[-5:]]
        detail = "; ".join(line for line in lines if line) or f"exit code {result.returncode}"
        raise RepoFetchError(f"git {args[0]} of {safe_url} failed: {detail}")
    return result.output


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
