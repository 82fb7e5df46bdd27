"""Processes of the `local` backend: environment, command, spawning, identity and signals.

Linux only where it reads `/proc` (process start times, group members); elsewhere a process
that cannot be verified is treated as gone, so no unrelated process is ever signalled.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flops_manager.orchestrators.orchestrator import DeployError
from flops_manager.orchestrators.service_spec import ServiceSpec

__all__ = [
    "BLAS_THREAD_VARIABLES",
    "PASSTHROUGH_VARIABLES",
    "ProcessIdentity",
    "exit_code_of",
    "group_alive",
    "host_platform",
    "identity_of",
    "is_same_process",
    "passthrough_environment",
    "resolve_command",
    "service_environment",
    "signal_group",
    "spawn_process",
    "terminate_groups",
    "wait_group_gone",
]

PASSTHROUGH_VARIABLES = ("PATH", "HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
"""The only variables of the manager's environment a local service sees (when set)."""

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Set from `resources.vcpus`: several learners on one host otherwise oversubscribe the CPU."""

_PROC = Path("/proc")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def passthrough_environment(source: Mapping[str, str]) -> dict[str, str]:
    """Return the `PASSTHROUGH_VARIABLES` that are set in `source` (the manager's environment)."""
    return {key: source[key] for key in PASSTHROUGH_VARIABLES if key in source}


def service_environment(spec: ServiceSpec, base: Mapping[str, str]) -> dict[str, str]:
    """Return the complete environment of a service: `base`, FLOps defaults, then `spec.env`.

    Defaults: `FLWR_TELEMETRY_ENABLED=0`, `PYTHONUNBUFFERED=1` (log lines appear as they are
    written), the BLAS thread variables from `resources.vcpus` (rounded up, at least 1), and
    for an `environment_path` its `bin/` first on `PATH` and `VIRTUAL_ENV`. `spec.env` wins.
    """
    env = dict(base)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    if spec.resources.vcpus is not None:
        threads = str(max(1, math.ceil(spec.resources.vcpus)))
        env.update(dict.fromkeys(BLAS_THREAD_VARIABLES, threads))
    if spec.environment_path is not None:
        env["VIRTUAL_ENV"] = str(spec.environment_path)
        env["PATH"] = os.pathsep.join([str(spec.environment_path / "bin"), env.get("PATH", "")])
    env.update(spec.env)
    if "PATH" not in env:
        env["PATH"] = os.defpath
    return env


def resolve_command(spec: ServiceSpec, env: Mapping[str, str], cwd: Path) -> list[str]:
    """Return `spec.command` with its program resolved to an absolute path.

    A program named `python`, `python3` or `python3.X` runs from `spec.environment_path`
    when one is given; other names are looked up on the service's `PATH`.

    Raises
    ------
    DeployError
        No command, no interpreter in the environment, or the program is not found.
    """
    if not spec.command:
        raise DeployError("the local backend needs a command; it cannot run an image's default")
    argv = list(spec.command)
    program = argv[0]
    if spec.environment_path is not None and _PYTHON.match(program):
        bin_dir = spec.environment_path / "bin"
        python = bin_dir / program if (bin_dir / program).exists() else bin_dir / "python"
        if not os.access(python, os.X_OK):
            raise DeployError(f"no Python interpreter at {python}")
        argv[0] = str(python)
        return argv
    if os.sep in program:
        path = cwd / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DeployError(f"command not found or not executable: {program!r}")
        argv[0] = str(path)
        return argv
    found = shutil.which(program, path=env["PATH"])
    if found is None:
        raise DeployError(f"command not found: {program!r} (service PATH: {env['PATH']})")
    argv[0] = found
    return argv


def _limit_address_space(limit_bytes: int) -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def spawn_process(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    memory_limit_bytes: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (own process group), appending its output to `log_path`.

    Raises
    ------
    OSError
        The program cannot be executed.
    """
    preexec = (
        None if memory_limit_bytes is None else partial(_limit_address_space, memory_limit_bytes)
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # only when memory limits are enforced
        )


def exit_code_of(returncode: int) -> int:
    """Return a `Popen.returncode` in the shell's convention: 128+N after signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells a process apart from a later one with the same pid."""

    boot_id: str
    start_ticks: int


@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    start_ticks: int


def _read_stat(pid: int) -> _Stat | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return _Stat(state=fields[0], pgrp=int(fields[2]), start_ticks=int(fields[19]))


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def identity_of(pid: int) -> ProcessIdentity | None:
    """Return the identity of a live process, or `None` if it is gone or cannot be read."""
    stat, boot_id = _read_stat(pid), _boot_id()
    if stat is None or boot_id is None or stat.state in ("Z", "X"):
        return None
    return ProcessIdentity(boot_id=boot_id, start_ticks=stat.start_ticks)


def is_same_process(pid: int, identity: ProcessIdentity) -> bool:
    """Return whether `pid` is still the live process that had `identity` (not a reused pid)."""
    return identity_of(pid) == identity


def group_alive(pgid: int) -> bool:
    """Return whether the process group has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal (setuid): look at /proc
        pass
    if not _PROC.is_dir():
        return True
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None and stat.pgrp == pgid and stat.state not in ("Z", "X"):
                return True
    return False  # only zombies left: they run no code and init reaps them


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to every process of the group we may signal; a group that is gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_group_gone(
    pgid: int, deadline: float, reap: Callable[[], object] | None = None, interval: float = 0.02
) -> bool:
    """Wait until the group has no live member or `time.monotonic()` passes `deadline`.

    `reap` (the leader's `Popen.poll`, when it is our child) is called on each check so that
    the leader does not linger as our zombie. Returns whether the group is gone.
    """
    while True:
        if reap is not None:
            reap()
        if not group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def terminate_groups(
    groups: Sequence[tuple[int, Callable[[], object] | None]],
    timeout: float,
    kill_wait: float = 5.0,
) -> list[str | None]:
    """Stop process groups: SIGTERM all at once, SIGKILL those still alive after `timeout`.

    Parameters
    ----------
    groups : Sequence[tuple[int, Callable[[], object] | None]]
        Each group id with the `reap` callback of `wait_group_gone`.
    timeout : float
        Seconds the groups together get to exit after SIGTERM.
    kill_wait : float
        Seconds SIGKILLed groups get to disappear.

    Returns
    -------
    list[str | None]
        Per group how it ended (for messages), or `None` if a live process survived SIGKILL.
    """
    for pgid, _ in groups:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    outcomes: list[str | None] = []
    for pgid, reap in groups:
        if wait_group_gone(pgid, deadline, reap):
            outcomes.append("stopped by SIGTERM")
        else:
            signal_group(pgid, signal.SIGKILL)
            outcomes.append(f"killed with SIGKILL after {timeout:g} s")
    deadline = time.monotonic() + kill_wait
    for index, (pgid, reap) in enumerate(groups):
        if outcomes[index] != "stopped by SIGTERM" and not wait_group_gone(pgid, deadline, reap):
            outcomes[index] = None
    return outcomes


def host_platform() -> str:
    """Return this machine's OCI platform, e.g. `linux/amd64`."""
    machine = platform.machine().lower()
    return f"{sys.platform}/{_ARCHITECTURES.get(machine, machine)}"
