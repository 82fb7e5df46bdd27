"""Ask pip, in a venv, what it would install (`--dry-run --report`) and which releases exist.

pip runs with the venv's interpreter, so it sees what the venv already imports (the FLOps
runtime) as installed and prefers it; with the machine's pip configuration and the
builder's extra arguments, so that a dry run decides exactly what the install after it
does. Release lists come from `pip index versions`, which lists only releases with files
for this interpreter and platform. Neither downloads more than metadata where the index
serves it separately (PEP 658); otherwise pip fetches a wheel to read its metadata.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from flops_core.commands import CommandTimeoutError, run_command
from flops_core.logs import get_logger
from flops_manager.environments.errors import (
    PackageDownloadError,
    PipTimeoutError,
    VenvCreationError,
)
from flops_manager.environments.venv_setup import looks_like_network_failure

__all__ = ["Conflict", "PipResolver", "Resolution", "parse_conflict"]

_logger = get_logger("manager.environments")

_DEPENDS = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*) \S+ depends on (?P<what>.+)$")
_REQUESTED = re.compile(r"^\s*The user requested (?:\(constraint\) )?(?P<what>.+)$")
_NO_MATCH = re.compile(r"(?:No matching distribution found for|version that satisfies the "
                       r"requirement) (?P<what>[^\s(]+)")  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Conflict:
    """Why pip found no solution: the packages it names and its explanation.

    Parameters
    ----------
    names : frozenset[str]
        Canonical names of every package in pip's explanation (both sides).
    lines : tuple[str, ...]
        pip's "The conflict is caused by" lines (or its error lines), stripped.
    """

    names: frozenset[str]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Resolution:
    """pip's answer: what it would install, or why it cannot.

    Parameters
    ----------
    installs : dict[str, str]
        Canonical name → version pip would install (already importable ones are absent).
    conflict : Conflict | None
        Set when pip found no solution.
    """

    installs: dict[str, str] = field(default_factory=dict)
    conflict: Conflict | None = None


class PipResolver:
    """Dry runs and release lists with one venv's pip.

    Parameters
    ----------
    python : Path
        The venv's interpreter.
    pip_args : Sequence[str]
        Extra pip arguments (indexes, find-links).
    timeout : float
        Seconds one pip command may take.
    dependency_file : str
        The repo's dependency file, for error messages.
    """

    def __init__(
        self, python: Path, *, pip_args: Sequence[str], timeout: float, dependency_file: str
    ) -> None:
        self._python = python
        self._pip_args = tuple(pip_args)
        self._timeout = timeout
        self._dependency_file = dependency_file
        self._releases: dict[str, list[str]] = {}
        self.runs = 0

    def resolve(self, requirements: Sequence[str], constraints: Sequence[str]) -> Resolution:
        """What `pip install -r requirements -c constraints` would install.

        Raises
        ------
        PackageDownloadError
            When an index could not be reached; retryable.
        PipTimeoutError
            When pip took longer than the timeout.
        """
        self.runs += 1
        with tempfile.TemporaryDirectory(prefix="flops-resolve-") as tmp:
            folder = Path(tmp)
            req, con, report = (folder / n for n in ("req.txt", "con.txt", "report.json"))
            req.touch(mode=0o600)  # URL lines may hold credentials
            req.write_text("".join(f"{line}\n" for line in requirements), encoding="utf-8")
            con.write_text("".join(f"{line}\n" for line in constraints), encoding="utf-8")
            output, code = self._pip(
                "install", "--dry-run", "--report", str(report), "-r", str(req), "-c", str(con)
            )
            if code == 0:
                data = json.loads(report.read_text(encoding="utf-8"))
                installs: dict[str, str] = {
                    canonicalize_name(str(item["metadata"]["name"])): str(
                        item["metadata"]["version"]
                    )
                    for item in data.get("install", [])
                }
                return Resolution(installs=installs)
        # An unreachable index ends in "No matching distribution" too, after retries.
        if "ResolutionImpossible" not in output and looks_like_network_failure(output):
            raise PackageDownloadError(
                f"a package index could not be reached while resolving {self._dependency_file}",
                dependency_file=self._dependency_file,
                output_tail="\n".join(output.splitlines()[-20:]),
            )
        return Resolution(conflict=parse_conflict(output))

    def releases(self, name: str) -> list[str]:
        """The releases of `name` installable here, oldest first ([] when none or unknown)."""
        key = canonicalize_name(name)
        if key not in self._releases:
            output, code = self._pip("index", "versions", key)
            found: list[str] = []
            for line in output.splitlines():
                if line.startswith("Available versions:"):
                    found = [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
            if code != 0 and looks_like_network_failure(output):
                raise PackageDownloadError(
                    f"a package index could not be reached while listing releases of {key}",
                    dependency_file=self._dependency_file,
                )
            self._releases[key] = list(reversed(found))
        return list(self._releases[key])

    def _pip(self, subcommand: str, *args: str) -> tuple[str, int]:
        progress = ("--progress-bar", "off") if subcommand == "install" else ()
        command = [
            str(self._python),
            *("-m", "pip", subcommand, "--no-input", "--disable-pip-version-check"),
            *progress,
            *args,
            *self._pip_args,
        ]
        try:
            result = run_command(command, timeout=self._timeout)
        except CommandTimeoutError as e:
            raise PipTimeoutError(
                f"pip {subcommand} for {self._dependency_file} ran longer than {self._timeout:g} s",
                dependency_file=self._dependency_file,
            ) from e
        except OSError as e:
            raise VenvCreationError(
                f"cannot run pip: {e}", dependency_file=self._dependency_file
            ) from e
        return result.output, result.returncode


def parse_conflict(output: str) -> Conflict:
    """The packages and explanation in the output of a pip run that found no solution."""
    lines = [line.rstrip() for line in output.splitlines()]
    explained: list[str] = []
    if "The conflict is caused by:" in lines:
        for line in lines[lines.index("The conflict is caused by:") + 1 :]:
            if not line.strip():
                break
            explained.append(line.strip())
    names: set[str] = set()
    for line in explained:
        depends = _DEPENDS.match(line)
        if depends is not None:
            names.add(canonicalize_name(depends["name"]))
            what = depends["what"]
        else:
            requested = _REQUESTED.match(line)
            what = requested["what"] if requested is not None else ""
        if (name := _NAME.match(what)) is not None:
            names.add(canonicalize_name(name.group(0)))
    for match in _NO_MATCH.finditer(output):
        if (name := _NAME.match(match["what"])) is not None:
            names.add(canonicalize_name(name.group(0)))
    if not explained:
        explained = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    return Conflict(frozenset(names), tuple(explained[:12]))
