"""Run a command to its end with a timeout, its output redacted: the one command runner.

Every command FLOps runs to completion (venv and pip for environments, the image builder's
pip and Buildah, compileall, the Python interpreter probe) goes through `run_command`. The
command runs in its own process group, killed whole on timeout or interruption (pip's and
Buildah's own subprocesses too). Its output is read line by line as it comes, every
credential in a URL replaced by `***` before anything sees it; a long command (a Buildah
build) can hand each line to a callback and append it to a log file as it runs. The command
line itself is logged (debug) redacted the same way. Callers translate `CommandTimeoutError`
and `OSError` into the errors of their own family.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO

from flops_core.errors import TemporaryError
from flops_core.logs import get_logger
from flops_core.redact import redact_url

__all__ = ["CommandResult", "CommandTimeoutError", "command_line", "redact_text", "run_command"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_KILLED_READ_S = 5.0  # how long the output of a killed command is still read
_log = get_logger("commands")


class CommandTimeoutError(TemporaryError):
    """Raised when a command runs longer than its timeout; it has been killed; retryable.

    Parameters
    ----------
    message : str
        Names the program and its timeout.
    lines : Sequence[str]
        The (redacted) output lines the command wrote until it was killed.
    """

    def __init__(self, message: str, lines: Sequence[str] = ()) -> None:
        super().__init__(message, output=lines)
        self.lines = list(lines)


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit code and its output, credentials in URLs redacted.

    `output` holds stdout (with stderr merged in, unless the command ran with
    `merge_output=False`: then stderr is in `errors`).
    """

    returncode: int
    output: str
    errors: str = ""

    @cached_property
    def lines(self) -> tuple[str, ...]:
        """The lines of `output`, without their line ends."""
        return _split_lines(self.output)

    def tail_lines(self, count: int = 20) -> list[str]:
        """The last `count` non-blank lines of the output (and errors), right-stripped."""
        lines = [*self.lines, *_split_lines(self.errors)]
        return [line.rstrip() for line in lines if line.strip()][-count:]

    def tail(self, lines: int = 20) -> str:
        """The last `lines` non-blank lines of the output (and errors), for messages."""
        return "\n".join(self.tail_lines(lines))


def redact_text(text: str) -> str:
    """Return `text` with the credentials of every URL in it replaced by `***`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def command_line(command: Iterable[str]) -> str:
    """`command` as one line for logs and messages, credentials in URLs redacted."""
    return redact_text(" ".join(command))


def run_command(
    command: Sequence[str],
    *,
    timeout: float,
    merge_output: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    log_file: Path | None = None,
) -> CommandResult:
    """Run `command` to its end, at most `timeout` seconds, and return its exit and output.

    Parameters
    ----------
    command : Sequence[str]
        The program and its arguments.
    timeout : float
        Seconds the command may run (until it exits and its output is closed).
    merge_output : bool
        Whether stderr is merged into `output` (True) or kept apart in `errors`.
    cwd : Path | None
        Working directory; None: this process's.
    env : Mapping[str, str] | None
        The environment; None: this process's.
    on_line : Callable[[str], None] | None
        Called (from a reader thread) with each line of `output` as it comes, redacted and
        without its line end.
    log_file : Path | None
        Appended with every (redacted) line of `output` as it comes.

    Raises
    ------
    CommandTimeoutError
        When the command ran too long; it carries the output lines written until then.
    OSError
        When the program cannot be started.
    """
    _log.debug("running %s", command_line(command))
    deadline = time.monotonic() + timeout
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    log = log_file.open("a", encoding="utf-8") if log_file is not None else None
    assert process.stdout is not None
    readers = [_Reader(process.stdout, on_line, log)]
    if process.stderr is not None:
        readers.append(_Reader(process.stderr, None, None))
    try:
        returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
            if reader.is_alive():  # something the command started still holds its output
                raise subprocess.TimeoutExpired(list(command), timeout)
    except subprocess.TimeoutExpired as e:
        _kill_group(process, readers)
        name = Path(command[0]).name
        lines = _split_lines(readers[0].text())
        raise CommandTimeoutError(f"{name} ran longer than {timeout:g} s", lines) from e
    except BaseException:
        _kill_group(process, readers)
        raise
    finally:
        if log is not None:
            log.close()
    errors = readers[1].text() if len(readers) > 1 else ""
    return CommandResult(returncode, readers[0].text(), errors)


@dataclass
class _Reader:
    """Reads one output pipe line by line in a thread, redacting each line."""

    pipe: IO[bytes]
    on_line: Callable[[str], None] | None
    log: IO[str] | None
    chunks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, name="run-command", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self.pipe:
            for raw in self.pipe:
                chunk = redact_text(raw.decode("utf-8", "replace"))
                self.chunks.append(chunk)
                line = chunk.rstrip("\r\n")
                if self.log is not None:
                    self.log.write(line + "\n")
                if self.on_line is not None:
                    self.on_line(line)

    def join(self, timeout: float) -> None:
        """Wait at most `timeout` seconds for the pipe's end."""
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        """Whether the pipe is still open."""
        return self._thread.is_alive()

    def text(self) -> str:
        """Everything read so far."""
        return "".join(self.chunks)


def _split_lines(text: str) -> tuple[str, ...]:
    """`text`'s lines as a pipe yields them (split at newlines), without their line ends."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return tuple(line.rstrip("\r") for line in lines)


def _kill_group(process: subprocess.Popen[bytes], readers: Sequence[_Reader]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for reader in readers:
        reader.join(_KILLED_READ_S)
