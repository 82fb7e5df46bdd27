"""Why an ML repo's Python environment could not be built; `retryable` says if retrying helps."""

from __future__ import annotations

from flops_core.errors import FlopsError, TemporaryError

__all__ = [
    "EnvironmentBuildError",
    "PackageDownloadError",
    "PipTimeoutError",
    "RequirementsConflictError",
    "RuntimeProbeError",
    "UnsupportedDependenciesError",
    "VenvCreationError",
]


class EnvironmentBuildError(FlopsError):
    """Base of every failure to build an environment; the message is safe to show to users.

    Parameters
    ----------
    message : str
        What went wrong, with the relevant lines of pip's output (credentials redacted).
    dependency_file : str | None
        The repo's dependency file the environment was built from, when known.
    output_tail : str
        The last lines of the failed command's output (credentials redacted), or "";
        `output` has the same lines as a list.
    """

    def __init__(
        self, message: str, *, dependency_file: str | None = None, output_tail: str = ""
    ) -> None:
        super().__init__(message, output=output_tail.splitlines())
        self.dependency_file = dependency_file
        self.output_tail = output_tail


class RequirementsConflictError(EnvironmentBuildError):
    """Raised when pip cannot satisfy the requirements (conflict, no such package); permanent."""


class PackageDownloadError(EnvironmentBuildError, TemporaryError):
    """Raised when pip cannot reach a package index or download a file; retryable."""


class PipTimeoutError(EnvironmentBuildError, TemporaryError):
    """Raised when `pip install` runs longer than the builder's `pip_timeout`; retryable."""


class UnsupportedDependenciesError(EnvironmentBuildError):
    """Raised when the repo needs what pip cannot install (conda-only packages); permanent."""


class VenvCreationError(EnvironmentBuildError):
    """Raised when `python -m venv` fails or the new venv cannot import the runtime; permanent."""


class RuntimeProbeError(EnvironmentBuildError):
    """Raised when the FLOps runtime interpreter cannot be run or inspected; permanent."""
