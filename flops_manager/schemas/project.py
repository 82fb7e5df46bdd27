"""The body of `POST /api/flops/projects`: the original FLOps fields first, then FLOps' own."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from flops_core.repos.git_names import (
    MAX_REF_LENGTH,
    MAX_REPO_URL_LENGTH,
    check_ref,
    check_repo_url,
)
from flops_core.vocabulary import ACTIVE_STATES, STRATEGY_NAMES, MLFlavor, ProjectState
from flops_manager.core.data_tags import DATA_TAG_MAX_LENGTH, check_data_tag
from flops_manager.services.tokens import CUSTOMER_ID_PATTERN

__all__ = [
    "ACTIVE_STATES",
    "MAX_DATA_TAGS",
    "MAX_DATA_TAG_LENGTH",
    "MAX_STRATEGY_PARAMS_BYTES",
    "PostTrainingStep",
    "ProjectCreate",
    "ProjectState",
    "ResourceConstraints",
    "TrainingConfiguration",
]


MAX_DATA_TAG_LENGTH = DATA_TAG_MAX_LENGTH
"""Characters of one data tag as users write it (`shared:` and 128 characters)."""
MAX_DATA_TAGS = 64
"""Data tags one project may train on."""
MAX_STRATEGY_PARAMS_BYTES = 16_384
"""Size of `strategy_params` as compact JSON; a strategy has a handful of numbers."""


class PostTrainingStep(StrEnum):
    """What to do with the trained model (original FLOps names)."""

    BUILD_IMAGE_FOR_TRAINED_MODEL = "build_image_for_trained_model"
    DEPLOY_TRAINED_MODEL_IMAGE = "deploy_trained_model_image"


class TrainingConfiguration(BaseModel):
    """How to train: mode, data, rounds, learners and the aggregation strategy."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["classic", "hierarchical"] = Field(
        "classic",
        description="classic (one aggregator) or hierarchical (an aggregator per cluster, "
        "learners spread over the clusters round-robin, a root aggregator above; the "
        "min_*_clients apply per cluster, capped by the cluster's learners). With no clusters "
        "configured, the embedded default simulates two, each with min_available_clients "
        "learners.",
    )
    data_tags: list[Annotated[str, Field(max_length=MAX_DATA_TAG_LENGTH)]] = Field(
        min_length=1,
        max_length=MAX_DATA_TAGS,
        description=f"1 to {MAX_DATA_TAGS} tags of the data on the learners' ML data servers "
        "to train on: `<tag>` "
        "is the project owner's own data (pushed by or for that customer, stored as "
        "`<customer>:<tag>`; no other customer's projects can read it), `shared:<tag>` the "
        "admin's shared data (stored as plain `<tag>`). Each tag is 1-128 letters, digits, "
        "`_` or `-`.",
    )
    training_rounds: int = Field(3, ge=1, le=10_000, description="Rounds of training.")
    training_cycles: int = Field(
        1,
        ge=1,
        le=1_000,
        description="Root rounds in hierarchical mode; each runs training_rounds in every cluster.",
    )
    min_available_clients: int = Field(1, ge=1, description="Learners needed to start.")
    min_fit_clients: int = Field(1, ge=1, description="Learners that train in each round.")
    min_evaluate_clients: int = Field(1, ge=1, description="Learners that evaluate each round.")
    learners: int | None = Field(
        None,
        ge=1,
        le=1_000,
        description="Learners to deploy; default min_available_clients (per cluster on "
        "simulated clusters). Where learners go to the registered nodes that hold the data "
        "(oakestra): one per fresh node holding any of data_tags by default, and at most that "
        "many.",
    )
    strategy: str = Field("FedAvg", description=f"One of: {', '.join(STRATEGY_NAMES)}.")
    strategy_params: dict[str, Any] = Field(
        default_factory=dict,
        description=f"The strategy's own parameters, e.g. proximal_mu; at most "
        f"{MAX_STRATEGY_PARAMS_BYTES} bytes as JSON.",
    )
    round_timeout_s: float = Field(300.0, gt=0, le=86_400, description="Seconds per round.")
    connect_timeout_s: float = Field(
        300.0, gt=0, le=86_400, description="Seconds to wait for enough learners."
    )

    @field_validator("data_tags")
    @classmethod
    def _tags_are_names(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            check_data_tag(tag)
        return tags

    @field_validator("strategy_params")
    @classmethod
    def _params_are_small(cls, params: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(params, separators=(",", ":")).encode())
        if size > MAX_STRATEGY_PARAMS_BYTES:
            raise ValueError(
                f"strategy_params is {size} bytes as JSON; at most {MAX_STRATEGY_PARAMS_BYTES} "
                "are allowed"
            )
        return params

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        if name not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGY_NAMES)}")
        return name

    @model_validator(mode="after")
    def _counts_fit(self) -> TrainingConfiguration:
        learners = self.deployed_learners
        for field in ("min_available_clients", "min_fit_clients", "min_evaluate_clients"):
            if getattr(self, field) > learners:
                raise ValueError(
                    f"{field} ({getattr(self, field)}) exceeds the number of learners ({learners})"
                )
        for field in ("min_fit_clients", "min_evaluate_clients"):
            if getattr(self, field) > self.min_available_clients:
                raise ValueError(f"{field} exceeds min_available_clients")
        return self

    @property
    def deployed_learners(self) -> int:
        """How many learners the project deploys."""
        return self.learners or self.min_available_clients


class ResourceConstraints(BaseModel):
    """Resources of each learner (original FLOps fields; memory and storage in MB)."""

    model_config = ConfigDict(extra="forbid")

    memory: int = Field(
        1024,
        ge=1,
        description="Memory per learner, MB; a hard limit on container backends (a learner "
        "with Flower and scikit-learn uses about 300 MB).",
    )
    vcpus: float = Field(1, gt=0, le=256, description="vCPUs per learner.")
    storage: int = Field(0, ge=0, description="Storage per learner, MB.")


Platform = Literal["linux/amd64", "linux/arm64"]


def _amd64_only() -> list[Platform]:
    return ["linux/amd64"]


class ProjectCreate(BaseModel):
    """A new FL project, FLOps-compatible (`customerID`, `ml_repo_url`, ...)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    customer_id: str = Field(
        "Admin",
        validation_alias=AliasChoices("customerID", "customer_id"),
        min_length=1,
        max_length=128,
        pattern=CUSTOMER_ID_PATTERN,
        description="Whose project; must match the token's customer unless the caller is admin.",
    )
    ml_repo_url: str = Field(
        min_length=1,
        max_length=MAX_REPO_URL_LENGTH,
        description="Git URL of the ML repo: an allowed scheme (https, ssh by default), never "
        "starting with '-', no control characters.",
    )
    ml_repo_ref: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REF_LENGTH,
        description="Branch, tag or commit id; default the repo's HEAD. A name as `git "
        "check-ref-format` allows (not starting with '-', no '..', '@{', spaces, control "
        "characters or '~^:?*[\\') or 7-40 hex digits.",
    )
    ml_model_flavor: MLFlavor = Field(
        description="ML library of the repo: sklearn, pytorch, tensorflow or keras."
    )
    # Strict: JSON true/false only (the original SLAs send them so), not 0/1 or "yes".
    verbose: StrictBool = Field(
        False, description="More detailed logs from the project's services (true or false)."
    )
    use_devel_base_images: StrictBool = Field(
        False, description="Original FLOps option for development base images (containers)."
    )
    supported_platforms: list[Platform] = Field(
        default_factory=_amd64_only,
        min_length=1,
        max_length=8,
        description="Platforms of the learners: linux/amd64 and/or linux/arm64.",
    )
    learner_platforms: list[Platform] | None = Field(
        None,
        max_length=1_000,
        description="Platform of learner i, for as many learners as listed (each one of "
        "supported_platforms); the others run on the node's own. On the docker backend a "
        "platform other than the host's runs under emulation.",
    )
    training_configuration: TrainingConfiguration = Field(
        description="How to train: data tags, rounds, learners, strategy."
    )
    resource_constraints: ResourceConstraints = Field(
        ResourceConstraints(), description="Resources of each learner."
    )
    post_training_steps: list[PostTrainingStep] = Field(
        default_factory=list,
        max_length=8,
        description="What to do with the trained model: build_image_for_trained_model, "
        "deploy_trained_model_image.",
    )

    @field_validator("ml_repo_url")
    @classmethod
    def _url_is_not_an_option(cls, url: str) -> str:
        return check_repo_url(url)

    @field_validator("ml_repo_ref")
    @classmethod
    def _ref_is_a_ref(cls, ref: str | None) -> str | None:
        return ref if ref is None else check_ref(ref)

    @model_validator(mode="after")
    def _learner_platforms_fit(self) -> ProjectCreate:
        listed = self.learner_platforms or []
        for platform in listed:
            if platform not in self.supported_platforms:
                raise ValueError(
                    f"learner_platforms: {platform} is not in supported_platforms "
                    f"({', '.join(self.supported_platforms)}); add it there or remove it here"
                )
        learners = self.training_configuration.deployed_learners
        if len(listed) > learners:
            raise ValueError(
                f"learner_platforms lists {len(listed)} platforms for {learners} learners"
            )
        return self

    def learner_platform(self, index: int) -> list[str]:
        """The platforms learner `index` may run on."""
        listed = self.learner_platforms or []
        return [listed[index]] if index < len(listed) else list(self.supported_platforms)

    @model_validator(mode="after")
    def _steps_are_possible(self) -> ProjectCreate:
        steps = set(self.post_training_steps)
        if PostTrainingStep.DEPLOY_TRAINED_MODEL_IMAGE in steps and (
            PostTrainingStep.BUILD_IMAGE_FOR_TRAINED_MODEL not in steps
        ):
            raise ValueError(
                "post_training_steps: deploy_trained_model_image needs "
                "build_image_for_trained_model"
            )
        return self
