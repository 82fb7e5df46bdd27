"""The MLflow adapter of the inference build: find a registered model version, fetch it, and
let `mlflow models generate-dockerfile` write MLflow's serving Dockerfile for it.

MLflow is imported only here and only when an inference image is built, so that project image
builds keep working without it. The tracking URI may carry credentials: it is passed to MLflow
in-process and to the `mlflow` subprocess through the environment, never on a command line,
and error messages name the model URI, not the server. Every MLflow error becomes a
`ModelSourceError` (or `ModelSourceUnavailableError` when the server cannot be reached).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from flops_core.commands import CommandTimeoutError, redact_text, run_command
from image_builder.errors import ModelSourceError, ModelSourceUnavailableError
from image_builder.pip_resolver import relevant_pip_lines

__all__ = [
    "GENERATED_MODEL_DIR",
    "ModelVersionInfo",
    "download_model",
    "generate_dockerfile",
    "model_flavors",
    "resolve_model_version",
]

#: Where `generate-dockerfile` puts the model in its output folder (the Dockerfile COPYs it).
GENERATED_MODEL_DIR = "model_dir/model"

_UNREACHABLE = ("Max retries exceeded", "Connection refused", "NewConnectionError", "timed out")


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version and what its training run recorded.

    Parameters
    ----------
    name, version : str
        The registered model's name and the version's number.
    run_id : str | None
        The run that logged it.
    metrics : dict[str, float]
        The run's latest metrics (e.g. `accuracy`, `loss`).
    tags : dict[str, str]
        The run's tags (FLOps sets `flops.repo_url`, `flops.commit`, `flops.project_id`).
    """

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """`models:/<name>/<version>`: this exact version, whatever aliases move later."""
        return f"models:/{self.name}/{self.version}"


def resolve_model_version(tracking_uri: str, model_uri: str) -> ModelVersionInfo:
    """Resolve `model_uri` (`models:/<name>@<alias>`, `models:/<name>/<version>`) to a version.

    Raises
    ------
    ModelSourceError
        When the URI does not name a registered model version, or it does not exist.
    ModelSourceUnavailableError
        When the tracking server cannot be reached.
    """
    if not model_uri.startswith("models:/"):
        raise ModelSourceError(
            f"{model_uri!r} is not a registered model: expected models:/<name>@<alias> "
            "or models:/<name>/<version>"
        )
    from mlflow import MlflowClient
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with _translated(f"resolving {model_uri}"):
        parts = get_model_name_and_version(client, model_uri)  # type: ignore[no-untyped-call]
        if len(parts) != 2:
            raise ModelSourceError(
                f"{model_uri!r} names a logged model, not a registered model version"
            )
        name, version = str(parts[0]), str(parts[1])
        model_version = client.get_model_version(name, version)
        run_id = model_version.run_id or None
        metrics: dict[str, float] = {}
        tags: dict[str, str] = {}
        if run_id:
            run = client.get_run(run_id)
            metrics = {str(k): float(v) for k, v in run.data.metrics.items()}
            tags = {str(k): str(v) for k, v in run.data.tags.items()}
    return ModelVersionInfo(name, version, run_id, metrics, tags)


def download_model(tracking_uri: str, model: ModelVersionInfo, dest: Path) -> Path:
    """Download the version's artifacts (the MLmodel folder) into `dest`; return `dest`.

    Raises
    ------
    ModelSourceError, ModelSourceUnavailableError
        When the artifacts cannot be fetched or hold no `MLmodel`.
    """
    import mlflow.artifacts

    dest.mkdir(parents=True, exist_ok=True)
    with _translated(f"downloading {model.uri}"):
        path = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model.uri, dst_path=str(dest), tracking_uri=tracking_uri
            )
        )
    if not (path / "MLmodel").is_file():
        raise ModelSourceError(f"the artifacts of {model.uri} hold no MLmodel file")
    return path


def model_flavors(model_dir: Path) -> dict[str, Any]:
    """The `flavors` section of the model's `MLmodel` file."""
    try:
        data = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ModelSourceError(f"the model's MLmodel file cannot be read: {e}") from e
    flavors = data.get("flavors") if isinstance(data, dict) else None
    return dict(flavors) if isinstance(flavors, dict) else {}


def generate_dockerfile(
    model_dir: Path, out_dir: Path, *, environ: Mapping[str, str] | None = None
) -> str:
    """Run `mlflow models generate-dockerfile` for the local `model_dir`; return its Dockerfile.

    `out_dir` receives the Dockerfile and the model at `GENERATED_MODEL_DIR` (MLflow copies
    it). The `mlflow` of this interpreter runs it, so the Dockerfile is that MLflow's.

    Raises
    ------
    ModelSourceError
        When MLflow fails or is not installed.
    """
    command = [
        *(sys.executable, "-m", "mlflow", "models", "generate-dockerfile"),
        *("--model-uri", str(model_dir), "--output-directory", str(out_dir)),
        *("--env-manager", "local"),
    ]
    env = dict(environ if environ is not None else os.environ)
    try:
        result = run_command(command, timeout=300.0, env=env)
    except (OSError, CommandTimeoutError) as e:
        raise ModelSourceError(f"cannot run mlflow models generate-dockerfile: {e}") from e
    dockerfile = out_dir / "Dockerfile"
    if result.returncode != 0 or not dockerfile.is_file():
        lines = relevant_pip_lines(result.output, limit=10)
        last = lines[-1] if lines else f"exit code {result.returncode}"
        raise ModelSourceError(f"mlflow models generate-dockerfile failed: {last}", output=lines)
    return dockerfile.read_text(encoding="utf-8")


class _translated:
    """Turn MLflow's and the network's errors into `ModelSourceError`s naming `what`."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> Literal[False]:
        if exc is None or isinstance(exc, ModelSourceError) or not isinstance(exc, Exception):
            return False
        from mlflow.exceptions import MlflowException

        text = redact_text(str(exc)).strip().splitlines()[0] if str(exc).strip() else ""
        text = text or type(exc).__name__
        if len(text) > 300:
            text = text[:297] + "..."
        if any(sign in str(exc) for sign in _UNREACHABLE):
            raise ModelSourceUnavailableError(
                f"the MLflow tracking server cannot be reached while {self.what}: {text}"
            ) from exc
        if isinstance(exc, MlflowException | OSError):
            raise ModelSourceError(f"MLflow failed while {self.what}: {text}") from exc
        return False
