"""Python environments (venvs) for ML repos on the embedded default, cached per dependency set."""

from flops_core.requirements.requirement_plan import Override
from flops_manager.environments.built_environment import BuiltEnvironment
from flops_manager.environments.errors import (
    EnvironmentBuildError,
    PackageDownloadError,
    PipTimeoutError,
    RequirementsConflictError,
    RuntimeProbeError,
    UnsupportedDependenciesError,
    VenvCreationError,
)
from flops_manager.environments.python_environment import EnvironmentBuilder, ProgressCallback
from flops_manager.environments.requirement_fit import Relaxation

__all__ = [
    "BuiltEnvironment",
    "EnvironmentBuildError",
    "EnvironmentBuilder",
    "Override",
    "PackageDownloadError",
    "PipTimeoutError",
    "ProgressCallback",
    "Relaxation",
    "RequirementsConflictError",
    "RuntimeProbeError",
    "UnsupportedDependenciesError",
    "VenvCreationError",
]
