"""Run a long command (a Buildah build or push), streaming its redacted output line by line."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flops_core.commands import redact_text

__all__ = ["StreamTimeoutError", "StreamedResult", "stream_command"]


class StreamTimeoutError(Exception):
    """Raised when a streamed command runs longer than its timeout; it has been killed."""

    def __init__(self, message: str, lines: Sequence[str]) -> None:
        super().__init__(message)
        self.lines = list(lines)


@dataclass(frozen=True)
class StreamedResult:
    """How a streamed command ended: its exit code and every output line (redacted)."""

    returncode: int
    lines: tuple[str, ...]

    def tail(self, count: int = 20) -> list[str]:
        """The last `count` non-blank lines."""
        return [line for line in self.lines if line.strip()][-count:]


def stream_command(
    command: Sequence[str],
    *,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> StreamedResult:
    """Run `command` to its end (stderr merged into stdout), handing each line to `on_line`.

    The command runs in its own process group, killed whole on timeout or interruption.

    Parameters
    ----------
    command : Sequence[str]
        The program and its arguments.
    timeout : float
        Seconds the command may run.
    on_line : Callable[[str], None] | None
        Called with each output line, credentials in URLs redacted.
    log_file : Path | None
        Appended with every (redacted) line as well.
    env : Mapping[str, str] | None
        The environment; None: this process's.
    cwd : Path | None
        The working directory.

    Raises
    ------
    StreamTimeoutError
        When the command ran too long.
    OSError
        When the program cannot be started.
    """
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    lines: list[str] = []
    log = log_file.open("a", encoding="utf-8") if log_file is not None else None

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = redact_text(raw.decode("utf-8", "replace").rstrip("\r\n"))
            lines.append(line)
            if log is not None:
                log.write(line + "\n")
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=read, name="stream-command", daemon=True)
    reader.start()
    try:
        returncode = process.wait(timeout=timeout)
        reader.join()
    except subprocess.TimeoutExpired as e:
        _kill_group(process)
        reader.join(5.0)
        name = Path(command[0]).name
        raise StreamTimeoutError(f"{name} ran longer than {timeout:g} s", lines) from e
    except BaseException:
        _kill_group(process)
        raise
    finally:
        if log is not None:
            log.close()
    return StreamedResult(returncode, tuple(lines))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
