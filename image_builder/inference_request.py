"""What an inference image build is asked for, what it returns, and the image's labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from flops_core.redact import redact_url
from image_builder.build_request import JobRequest
from image_builder.model_source import (
    ModelVersionInfo,
)

__all__ = ["InferenceBuildRequest", "InferenceBuildResult", "inference_labels"]


@dataclass(frozen=True)
class InferenceBuildRequest(JobRequest):
    """What to build (the CLI's arguments): a registered model, and all `JobRequest` names.

    `base_image` may be a flavour base itself, used as it is.

    Parameters
    ----------
    tracking_uri : str
        The MLflow tracking (and registry) server; may carry credentials, never reported.
    model_uri : str
        `models:/<name>@<alias>` or `models:/<name>/<version>`.
    flavor : str | None
        A key of `FLAVORS`; None: from the model's MLmodel file.
    """

    tracking_uri: str = field(repr=False)
    model_uri: str
    flavor: str | None


@dataclass(frozen=True)
class InferenceBuildResult:
    """The pushed image (`<ref>@sha256:...`), the model version, platforms and step seconds."""

    image: str
    version: str
    platforms: tuple[str, ...]
    timings: dict[str, float]
    labels: dict[str, str]


def inference_labels(
    *,
    model: ModelVersionInfo,
    model_uri: str,
    project_id: str,
    flops_version: str,
) -> dict[str, str]:
    """The image's OCI and FLOps labels: model name, version and URI, project, run metrics.

    Parameters
    ----------
    model : ModelVersionInfo
        The resolved version; its run's metrics become `io.flops.metric.<name>`.
    model_uri : str
        The URI the build was asked for (e.g. with `@champion`).
    project_id : str
        The FLOps project.
    flops_version : str
        The FLOps release that built the image.
    """
    labels = {
        "org.opencontainers.image.title": f"{model.name} inference server",
        "org.opencontainers.image.description": (
            f"MLflow scoring server for {model.uri} (POST /invocations, GET /ping)"
        ),
        "org.opencontainers.image.version": model.version,
        "io.flops.project": project_id,
        "io.flops.model-name": model.name,
        "io.flops.model-version": model.version,
        "io.flops.model-uri": model_uri,
        "io.flops.version": flops_version,
    }
    source = model.tags.get("flops.repo_url")
    if source:
        labels["org.opencontainers.image.source"] = redact_url(source)
    revision = model.tags.get("flops.commit")
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if model.run_id:
        labels["io.flops.run-id"] = model.run_id
    for name, value in sorted(model.metrics.items()):
        labels[f"io.flops.metric.{name}"] = repr(float(value))
    return labels
