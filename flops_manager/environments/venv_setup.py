"""The steps of one build: create a venv, let it see the FLOps runtime, pip-install the rest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flops_core.commands import CommandTimeoutError, run_command
from flops_core.logs import get_logger
from flops_manager.environments.errors import (
    EnvironmentBuildError,
    PackageDownloadError,
    PipTimeoutError,
    RequirementsConflictError,
    VenvCreationError,
)

__all__ = ["RUNTIME_PTH_NAME", "create_venv", "looks_like_network_failure", "pip_install"]

_logger = get_logger("manager.environments")

#: The `.pth` file that appends the FLOps runtime's import path to a venv's.
RUNTIME_PTH_NAME = "flops-runtime.pth"

# Signs in pip's output that the network or an index failed. pip reports an unreachable
# index as a warning only while it retries (`--retries`, 5 by default), then as "No
# matching distribution": with `--retries 0` such a failure looks permanent.
_NETWORK_SIGNS = (
    "Retrying (Retry(",
    "connection broken by",
    "NameResolutionError",
    "Could not fetch URL",
    "NewConnectionError",
    "ConnectionError",
    "Connection reset",
    "Max retries exceeded",
    "Read timed out",
    "ReadTimeoutError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ProxyError",
    "IncompleteRead",
    "HTTP error 500",
    "HTTP error 502",
    "HTTP error 503",
    "HTTP error 504",
)

_CHECK_IMPORTS = (
    "import importlib.util as u, sys; "
    "missing = [n for n in sys.argv[1:] if u.find_spec(n) is None]; "
    "print(' '.join(missing)); sys.exit(1 if missing else 0)"
)


def create_venv(
    target: Path,
    *,
    python: Path,
    runtime_paths: Sequence[str],
    with_pip: bool,
    must_import: Sequence[str],
    prompt: str,
    timeout: float,
) -> Path:
    """Create a venv at `target` that imports the FLOps runtime after its own packages.

    Parameters
    ----------
    target : Path
        An empty (or missing) folder.
    python : Path
        The interpreter the venv is made from.
    runtime_paths : Sequence[str]
        The runtime's import path (site-packages, FLOps source roots), appended in order.
    with_pip : bool
        Whether to install pip into the venv; without, it borrows the runtime's pip.
    must_import : Sequence[str]
        Top-level modules the venv must find afterwards (e.g. `flops_utils`, `pip`).
    prompt : str
        The venv's name in shell prompts (`target` may be a temporary folder).
    timeout : float
        Seconds each command may take.

    Returns
    -------
    Path
        The venv's `bin/python`.

    Raises
    ------
    VenvCreationError
        When `venv` fails or the new venv cannot find `must_import`.
    """
    command = [str(python), "-m", "venv", "--prompt", prompt]
    command += [*([] if with_pip else ["--without-pip"]), str(target)]
    _run_or_raise(command, timeout, f"python -m venv failed for {python}")
    site_dirs = sorted(target.glob("lib/python*/site-packages"))
    if len(site_dirs) != 1:
        raise VenvCreationError(f"the venv at {target} has no single site-packages folder")
    (site_dirs[0] / RUNTIME_PTH_NAME).write_text(
        "".join(f"{path}\n" for path in runtime_paths), encoding="utf-8"
    )
    venv_python = target / "bin" / "python"
    _run_or_raise(
        [str(venv_python), "-c", _CHECK_IMPORTS, *must_import],
        timeout,
        "the new venv cannot import the FLOps runtime",
    )
    return venv_python


def pip_install(
    python: Path,
    *,
    requirements_file: Path,
    constraints_file: Path,
    pip_args: Sequence[str],
    timeout: float,
    dependency_file: str,
) -> None:
    """Run `python -m pip install -r requirements_file -c constraints_file` in a venv.

    Parameters
    ----------
    python : Path
        The venv's interpreter.
    requirements_file, constraints_file : Path
        What to install, and the versions pip may not change.
    pip_args : Sequence[str]
        Extra arguments (indexes, find-links); the machine's pip configuration applies too.
    timeout : float
        Seconds pip may run.
    dependency_file : str
        The repo's dependency file, named in error messages.

    Raises
    ------
    RequirementsConflictError
        When pip cannot find or reconcile the requirements; permanent.
    PackageDownloadError
        When an index or download failed; retryable.
    PipTimeoutError
        When pip ran longer than `timeout`; retryable.
    """
    command = [
        str(python),
        *("-m", "pip", "install", "--no-input", "--progress-bar", "off"),
        "--no-warn-script-location",
        *("-r", str(requirements_file), "-c", str(constraints_file)),
        *pip_args,
    ]
    try:
        result = run_command(command, timeout=timeout)
    except CommandTimeoutError as e:
        raise PipTimeoutError(
            f"pip install for {dependency_file} ran longer than {timeout:g} s",
            dependency_file=dependency_file,
        ) from e
    except OSError as e:
        raise VenvCreationError(f"cannot run pip: {e}", dependency_file=dependency_file) from e
    _logger.debug("pip output:\n%s", result.output)
    if result.returncode == 0:
        return
    tail = result.tail(20)
    network = "ResolutionImpossible" not in result.output and looks_like_network_failure(
        result.output
    )
    error: type[EnvironmentBuildError] = (
        PackageDownloadError if network else RequirementsConflictError
    )
    what = "a package index or download failed" if network else "requirements not installable"
    raise error(
        f"pip install failed for {dependency_file}, {what} (exit code {result.returncode}):\n"
        f"{tail}",
        dependency_file=dependency_file,
        output_tail=tail,
    )


def looks_like_network_failure(output: str) -> bool:
    """Whether pip's output shows that an index or a download failed."""
    return any(sign in output for sign in _NETWORK_SIGNS)


def _run_or_raise(command: list[str], timeout: float, what: str) -> None:
    try:
        result = run_command(command, timeout=timeout)
    except (OSError, CommandTimeoutError) as e:
        raise VenvCreationError(f"{what}: {e}") from e
    if result.returncode != 0:
        tail = result.tail(10)
        raise VenvCreationError(f"{what}:\n{tail}", output_tail=tail)
