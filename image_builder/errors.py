"""Why an image build failed: one exception per step's failure, safe to show to users."""

from __future__ import annotations

from collections.abc import Sequence

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


class ImageBuilderError(Exception):
    """Base of every image builder failure; the message is one line a user can act on.

    Parameters
    ----------
    reason : str
        What went wrong and what to do about it, one line, no secrets.
    output : Sequence[str]
        The relevant last lines of the failed command's output (credentials redacted).
    """

    retryable = False

    def __init__(self, reason: str, *, output: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = list(output)


class BuildStepError(ImageBuilderError):
    """Raised by the build job when a step fails; names the step (`clone`, `build`, ...)."""

    def __init__(self, step: str, cause: ImageBuilderError) -> None:
        super().__init__(cause.reason, output=cause.output)
        self.step = step
        self.retryable = cause.retryable


class CloneError(ImageBuilderError):
    """Raised when the repo cannot be cloned or checked out at the commit; retryable."""

    retryable = True


class RepoCheckError(ImageBuilderError):
    """Raised when the checkout breaks the ML-repo contract; permanent."""


class DependencyResolutionError(ImageBuilderError):
    """Raised when pip cannot resolve the repo's dependencies with the runtime's; permanent."""


class DependencyDownloadError(ImageBuilderError):
    """Raised when pip cannot reach a package index while resolving; retryable."""

    retryable = True


class RuntimeSourceError(ImageBuilderError):
    """Raised when the FLOps runtime code or its Containerfiles cannot be found; permanent."""


class ContainerBuildError(ImageBuilderError):
    """Raised when Buildah fails to build, or cannot be run at all; permanent."""


class RegistryError(ImageBuilderError):
    """Raised when the registry answers with an error (refused push, bad manifest); permanent."""


class RegistryUnavailableError(RegistryError):
    """Raised when the registry cannot be reached at all; retryable once it is started."""

    retryable = True

    def __init__(self, registry: str, detail: str) -> None:
        super().__init__(
            f"the registry at {registry} is not reachable: {detail}; start it or fix FLOPS_REGISTRY"
        )
        self.registry = registry


class ModelSourceError(ImageBuilderError):
    """Raised when the model to serve cannot be found or read in MLflow; permanent."""


class ModelSourceUnavailableError(ModelSourceError):
    """Raised when the MLflow tracking server cannot be reached; retryable."""

    retryable = True
