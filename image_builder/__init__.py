"""The image builder: turns an ML repo at a commit into learner and aggregator images, and a
registered model version into its inference-server image."""

from flops_core.image_names import IMAGE_ROLES, INFERENCE_ROLE, image_refs, inference_image_ref
from flops_core.registry_client import RegistryClient, existing_images
from image_builder.build_job import STEPS, BuildRequest, BuildResult, ImageBuildJob
from image_builder.errors import (
    BuildStepError,
    ImageBuilderError,
    RegistryError,
    RegistryUnavailableError,
)
from image_builder.inference_image import (
    INFERENCE_STEPS,
    InferenceBuildRequest,
    InferenceBuildResult,
    InferenceImageJob,
)

__all__ = [
    "IMAGE_ROLES",
    "INFERENCE_ROLE",
    "INFERENCE_STEPS",
    "STEPS",
    "BuildRequest",
    "BuildResult",
    "BuildStepError",
    "ImageBuildJob",
    "ImageBuilderError",
    "InferenceBuildRequest",
    "InferenceBuildResult",
    "InferenceImageJob",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailableError",
    "existing_images",
    "image_refs",
    "inference_image_ref",
]
