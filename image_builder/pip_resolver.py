"""Resolve requirements natively with pip (`install --dry-run --report`) into pinned lines.

pip runs on the builder's own interpreter (Python 3.11, like the images), isolated from
this machine's pip configuration files: the images are built with only the indexes in
`PipSettings`, so resolving with anything else (a local wheel folder, a constraints file
of this host) could pin releases the build cannot fetch. An unresolvable set fails here in
seconds with pip's own explanation instead of minutes into an emulated container build.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flops_core.commands import CommandTimeoutError, run_command
from image_builder.errors import DependencyDownloadError, DependencyResolutionError

__all__ = ["PipSettings", "isolated_pip_env", "relevant_pip_lines", "resolve_requirements"]

#: pip settings that are about the connection, not about what gets resolved; kept from env.
_KEPT_PIP_ENV = frozenset(
    {
        "PIP_CERT",
        "PIP_CLIENT_CERT",
        "PIP_DEFAULT_TIMEOUT",
        "PIP_TIMEOUT",
        "PIP_RETRIES",
        "PIP_PROXY",
    }
)
_NOISE = (
    "Collecting ",
    "Downloading ",
    "Using cached ",
    "Obtaining ",
    "Looking in ",
    "Requirement already ",
    "Would install ",
    "Processing ",
    "Preparing metadata",
    "Getting requirements",
    "Installing build dependencies",
    "Link requires a different Python",
)
_UNRESOLVABLE = ("ResolutionImpossible", "No matching distribution", "Could not find a version")
_NETWORK = (
    "Retrying (Retry(",
    "NewConnectionError",
    "NameResolutionError",
    "Could not fetch URL",
    "Max retries exceeded",
    "Read timed out",
    "ProxyError",
    "Network is unreachable",
)


@dataclass(frozen=True)
class PipSettings:
    """Which package indexes pip uses, both for resolving and inside image builds.

    Parameters
    ----------
    index_url : str | None
        Replaces PyPI when set (may hold credentials: never logged, never in image layers).
    extra_index_urls : tuple[str, ...]
        Further indexes.
    trusted_hosts : tuple[str, ...]
        Hosts pip may reach over plain HTTP.
    timeout : float
        Seconds one resolution may take.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    timeout: float = 900.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PipSettings:
        """Read `PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_TRUSTED_HOST` (file: URLs dropped)."""

        def urls(name: str) -> tuple[str, ...]:
            values = environ.get(name, "").split()
            return tuple(url for url in values if not url.startswith("file:"))

        index = urls("PIP_INDEX_URL")
        return cls(
            index_url=index[0] if index else None,
            extra_index_urls=urls("PIP_EXTRA_INDEX_URL"),
            trusted_hosts=tuple(environ.get("PIP_TRUSTED_HOST", "").split()),
        )

    def with_extra_indexes(self, urls: Sequence[str]) -> PipSettings:
        """These settings with `urls` added to the extra indexes."""
        extra = (*self.extra_index_urls, *(u for u in urls if u not in self.extra_index_urls))
        return PipSettings(self.index_url, extra, self.trusted_hosts, self.timeout)

    def env(self) -> dict[str, str]:
        """The `PIP_*` variables that select these indexes."""
        env: dict[str, str] = {}
        if self.index_url:
            env["PIP_INDEX_URL"] = self.index_url
        if self.extra_index_urls:
            env["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        if self.trusted_hosts:
            env["PIP_TRUSTED_HOST"] = " ".join(self.trusted_hosts)
        return env

    def pip_conf(self) -> str:
        """A `pip.conf` selecting these indexes, to mount into image builds ("" when default)."""
        lines = [
            f"{key.removeprefix('PIP_').lower().replace('_', '-')} = {value}"
            for key, value in self.env().items()
        ]
        return "[global]\n" + "\n".join(lines) + "\n" if lines else ""


def resolve_requirements(
    requirements: Sequence[str],
    *,
    constraints: Sequence[str] = (),
    settings: PipSettings,
    work_dir: Path,
    what: str,
) -> list[str]:
    """Resolve `requirements` under `constraints`; return every distribution pip would install.

    Parameters
    ----------
    requirements : Sequence[str]
        Requirement lines for `pip install -r`.
    constraints : Sequence[str]
        Lines for `-c`: versions pip may not change.
    settings : PipSettings
        The indexes.
    work_dir : Path
        Where the input files and pip's report are written.
    what : str
        What is resolved, for messages (e.g. `requirements.txt`).

    Returns
    -------
    list[str]
        `name==version` (or `name @ url` for direct references), sorted by name.

    Raises
    ------
    DependencyResolutionError
        When pip finds no solution; the message and output are pip's.
    DependencyDownloadError
        When an index cannot be reached.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    req_file, con_file, report = (
        work_dir / n for n in ("requirements.txt", "constraints.txt", "pip-report.json")
    )
    req_file.touch(mode=0o600)  # URL lines may hold credentials
    req_file.write_text("".join(f"{line}\n" for line in requirements), encoding="utf-8")
    con_file.write_text("".join(f"{line}\n" for line in constraints), encoding="utf-8")
    report.unlink(missing_ok=True)
    command = [
        sys.executable,
        *("-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-input"),
        *("--progress-bar", "off", "--disable-pip-version-check"),
        *("--report", str(report), "-r", str(req_file), "-c", str(con_file)),
    ]
    try:
        result = run_command(command, timeout=settings.timeout, env=isolated_pip_env(settings))
    except CommandTimeoutError as e:
        raise DependencyDownloadError(
            f"resolving {what} took longer than {settings.timeout:g} s"
        ) from e
    except OSError as e:
        raise DependencyResolutionError(f"cannot run pip to resolve {what}: {e}") from e
    if result.returncode != 0:
        raise _failure(result.output, what)
    return _locked_lines(json.loads(report.read_text(encoding="utf-8")), what)


def isolated_pip_env(settings: PipSettings) -> dict[str, str]:
    """This process's environment for pip, without this machine's pip configuration.

    Configuration files are skipped and `PIP_*` variables dropped, except those about the
    connection (certificates, timeouts, proxy); the indexes are `settings`'.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _KEPT_PIP_ENV}
    env.update(settings.env(), PIP_CONFIG_FILE=os.devnull)
    return env


def relevant_pip_lines(output: str, limit: int = 20) -> list[str]:
    """The last `limit` lines of pip's output that explain something (no download chatter)."""
    lines = [line.rstrip() for line in output.splitlines()]
    kept = [line for line in lines if line.strip() and not line.strip().startswith(_NOISE)]
    return kept[-limit:]


def _failure(output: str, what: str) -> DependencyResolutionError | DependencyDownloadError:
    tail = relevant_pip_lines(output)
    errors = [line.removeprefix("ERROR: ") for line in tail if line.startswith("ERROR: ")]
    errors = [e for e in errors if not e.startswith("ResolutionImpossible")] or errors
    first = errors[0] if errors else (tail[-1] if tail else "pip failed")
    if len(first) > 300:
        first = first[:297] + "..."
    if not any(sign in output for sign in _UNRESOLVABLE) and any(s in output for s in _NETWORK):
        return DependencyDownloadError(
            f"a package index could not be reached while resolving {what}: {first}", output=tail
        )
    return DependencyResolutionError(
        f"pip cannot resolve {what} together with the FLOps runtime: {first}", output=tail
    )


def _locked_lines(report: dict[str, object], what: str) -> list[str]:
    lines: dict[str, str] = {}
    for item in report.get("install", []):  # type: ignore[attr-defined]
        name = str(item["metadata"]["name"])
        version = str(item["metadata"]["version"])
        info = item.get("download_info") or {}
        if item.get("is_direct"):
            url = str(info.get("url", ""))
            if url.startswith("file:"):
                raise DependencyResolutionError(
                    f"{what} installs {name} from a local path, which an image build cannot "
                    "reach; publish it to an index or use a VCS URL"
                )
            commit = (info.get("vcs_info") or {}).get("commit_id")
            vcs = (info.get("vcs_info") or {}).get("vcs")
            lines[name.lower()] = (
                f"{name} @ {vcs}+{url}@{commit}" if vcs and commit else f"{name} @ {url}"
            )
        else:
            lines[name.lower()] = f"{name}=={version}"
    return [lines[key] for key in sorted(lines)]
