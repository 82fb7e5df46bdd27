"""Why an image build failed: one exception per step's failure, safe to show to users."""

from __future__ import annotations

from flops_core.errors import FlopsError, TemporaryError
from flops_core.flops_tree import RuntimeSourceError
from flops_core.registry_client import RegistryError, RegistryUnavailableError

__all__ = [
    "BuildStepError",
    "CloneError",
    "ContainerBuildError",
    "DependencyDownloadError",
    "DependencyResolutionError",
    "ImageBuilderError",
    "ModelSourceError",
    "ModelSourceUnavailableError",
    "RegistryError",
    "RegistryUnavailableError",
    "RepoCheckError",
    "RuntimeSourceError",
]


class ImageBuilderError(FlopsError):
    """Base of every image builder failure; the message is one line a user can act on.

    `reason` is what went wrong and what to do about it; `output` the relevant last lines of
    the failed command's output (credentials redacted).
    """


class BuildStepError(ImageBuilderError):
    """Raised by the build job when a step fails; names the step (`clone`, `build`, ...).

    It is as retryable as the error of the step (`cause`), which this instance copies.
    """

    def __init__(self, step: str, cause: FlopsError) -> None:
        super().__init__(cause.reason, output=cause.output)
        self.step = step
        self.retryable = cause.retryable


class CloneError(ImageBuilderError, TemporaryError):
    """Raised when the repo cannot be cloned or checked out at the commit; retryable."""


class RepoCheckError(ImageBuilderError):
    """Raised when the checkout breaks the ML-repo contract; permanent."""


class DependencyResolutionError(ImageBuilderError):
    """Raised when pip cannot resolve the repo's dependencies with the runtime's; permanent."""


class DependencyDownloadError(ImageBuilderError, TemporaryError):
    """Raised when pip cannot reach a package index while resolving; retryable."""


class ContainerBuildError(ImageBuilderError):
    """Raised when Buildah fails to build, or cannot be run at all; permanent."""


class ModelSourceError(ImageBuilderError):
    """Raised when the model to serve cannot be found or read in MLflow; permanent."""


class ModelSourceUnavailableError(ModelSourceError, TemporaryError):
    """Raised when the MLflow tracking server cannot be reached; retryable."""
