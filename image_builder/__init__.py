"""The image builder: turns an ML repo at a commit into learner and aggregator images."""

from image_builder.build_job import STEPS, BuildRequest, BuildResult, ImageBuildJob
from image_builder.errors import (
    BuildStepError,
    ImageBuilderError,
    RegistryError,
    RegistryUnavailableError,
)
from image_builder.image_names import IMAGE_ROLES, image_refs
from image_builder.registry_client import RegistryClient, existing_images

__all__ = [
    "IMAGE_ROLES",
    "STEPS",
    "BuildRequest",
    "BuildResult",
    "BuildStepError",
    "ImageBuildJob",
    "ImageBuilderError",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailableError",
    "existing_images",
    "image_refs",
]
