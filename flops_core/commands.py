"""Run the commands that build environments (venv, pip) with a timeout and redacted output."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flops_core.redact import redact_url

__all__ = ["CommandResult", "CommandTimeoutError", "redact_text", "run_command"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class CommandTimeoutError(Exception):
    """Raised when a command runs longer than its timeout; it has been killed."""


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit code and its output, credentials in URLs redacted."""

    returncode: int
    output: str
    errors: str = ""

    def tail(self, lines: int = 20) -> str:
        """The last `lines` non-blank lines of the output (and errors), for messages."""
        text = f"{self.output}\n{self.errors}" if self.errors else self.output
        kept = [line.rstrip() for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])


def redact_text(text: str) -> str:
    """Return `text` with the credentials of every URL in it replaced by `***`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def run_command(
    command: Sequence[str],
    *,
    timeout: float,
    merge_output: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `command` to its end, at most `timeout` seconds, and return its exit and output.

    The command runs in its own process group, so that on timeout everything it started
    (pip's build subprocesses too) is killed.

    Parameters
    ----------
    command : Sequence[str]
        The program and its arguments.
    timeout : float
        Seconds the command may run.
    merge_output : bool
        Whether stderr is merged into `output` (True) or kept apart in `errors`.
    cwd : Path | None
        Working directory; None: this process's.
    env : Mapping[str, str] | None
        The environment; None: this process's.

    Raises
    ------
    CommandTimeoutError
        When the command ran too long.
    OSError
        When the program cannot be started.
    """
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        _kill_group(process)
        raise CommandTimeoutError(f"{Path(command[0]).name} ran longer than {timeout:g} s") from e
    except BaseException:
        _kill_group(process)
        raise
    return CommandResult(
        process.returncode,
        redact_text(out.decode("utf-8", "replace")),
        redact_text(err.decode("utf-8", "replace")) if err else "",
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
