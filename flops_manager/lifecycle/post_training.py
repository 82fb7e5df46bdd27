"""After training: the inference server of a project's registered model, built and deployed.

Two steps, from the project body's `post_training_steps`:

- `build_image_for_trained_model`: on container backends the image builder makes an
  inference-server image with MLflow's serving stack (`python -m image_builder
  build-inference`), pushed as `<registry>/<customer>/<project>/inference:<version>`. On the
  embedded default it prepares the equivalent environment for `mlflow models serve`: the
  project's own Python environment, checked by loading the registered model in it.
- `deploy_trained_model_image`: runs that image (or, on the embedded default, `mlflow models
  serve` in that environment) as the project's `inference` service and waits until its
  `/ping` answers; its URL goes into the project's status. The inference service outlives
  the project's `completed` state; `DELETE /api/flops/projects/{id}` stops it.

Each step's progress, timings and result are recorded in the project's `result.post_training`
and as `post_training_step` events.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flops_core.commands import CommandTimeoutError, run_command
from flops_core.errors import FlopsError
from flops_core.image_names import inference_image_ref
from flops_core.logs import get_logger
from flops_manager.lifecycle.image_stage import BuildFailure, ImageSettings, ImageStage
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.teardown import UNDEPLOY_TIMEOUT_S
from flops_manager.orchestrators import (
    Orchestrator,
    OrchestratorError,
    PortMapping,
    Resources,
    RestartPolicy,
    ServiceSpec,
    ServiceStatus,
)
from flops_manager.schemas.project import PostTrainingStep

__all__ = ["INFERENCE_ROLE", "PostTraining", "PostTrainingFailure"]

_log = get_logger("manager.post_training")
_POLL_S = 0.5
INFERENCE_ROLE = "inference"
"""Role of the inference service: kept running when its project completes."""
_READY_TIMEOUT_S = 300.0
_INFERENCE_MEMORY_MB = 1024


class PostTrainingFailure(FlopsError):
    """Raised when a post-training step fails; the message says which and why."""


@dataclass
class PostTraining:
    """Run a project's post-training steps for its registered model."""

    project_id: str
    customer: str
    flavor: str
    platforms: list[str]
    store: ProjectStore
    orchestrator: Orchestrator
    deploy: Callable[[ServiceSpec], str]
    events: queue.Queue[dict[str, Any]]
    check_cancelled: Callable[[], None]
    tracking_url: str
    """MLflow as the manager reaches it (the model is checked on this machine)."""
    callback_env: dict[str, str]
    free_port: Callable[[], int]
    environment: Path | None = None
    """The project's Python environment (embedded default); `None` on container backends."""
    images: ImageSettings | None = None
    image_registry: str = ""
    """Names the image of an environment-run inference service where the orchestrator
    `needs_image_names`."""
    services_tracking_url: str | None = None
    """MLflow as the builder and the inference service reach it; `None`: `tracking_url`."""

    @property
    def _services_tracking_url(self) -> str:
        return self.services_tracking_url or self.tracking_url

    def run(self, steps: list[PostTrainingStep], model: dict[str, Any]) -> dict[str, Any]:
        """Run `steps` in order for `model` (the aggregator's registered model); the results.

        Raises
        ------
        PostTrainingFailure
            A step failed; the results of the steps before it are recorded.
        """
        if not model:
            raise PostTrainingFailure(
                "no registered model to build an inference server from (training ran without "
                "MLflow tracking)"
            )
        results: dict[str, Any] = {}
        built: dict[str, Any] = {}
        for step in steps:
            self.check_cancelled()
            record = {"state": "running", "started_at": time.time()}
            results[step.value] = record
            self.store.set_result(post_training=results)
            self.store.event("post_training_step", f"{step.value} started", data={"step": step})
            started = time.monotonic()
            try:
                if step is PostTrainingStep.BUILD_IMAGE_FOR_TRAINED_MODEL:
                    built = self._build(model)
                    outcome = built
                else:
                    outcome = self._deploy(model, built)
            except PostTrainingFailure as e:
                record.update(state="failed", reason=str(e),
                              duration_s=round(time.monotonic() - started, 2))  # fmt: skip
                self.store.set_result(post_training=results)
                self.store.event("post_training_step", f"{step.value} failed: {e}",
                                 data={"step": step, "state": "failed"})  # fmt: skip
                raise PostTrainingFailure(f"{step.value} failed: {e}") from e
            duration = round(time.monotonic() - started, 2)
            record.update(state="completed", duration_s=duration, **outcome)
            self.store.set_result(post_training=results)
            self.store.event(
                "post_training_step", f"{step.value} completed in {duration:.1f} s",
                data={"step": step, "state": "completed", **outcome},
            )  # fmt: skip
        return results

    # -- build ----------------------------------------------------------------------------

    def _build(self, model: dict[str, Any]) -> dict[str, Any]:
        uri = _version_uri(model)
        if self.images is None:
            return self._prepare_environment(uri, model)
        return self._build_image(uri, model)

    def _prepare_environment(self, uri: str, model: dict[str, Any]) -> dict[str, Any]:
        """Check that the project's environment can load the model `mlflow models serve`s."""
        assert self.environment is not None
        python = self.environment / "bin" / "python"
        check = (
            "import sys, mlflow.pyfunc; m = mlflow.pyfunc.load_model(sys.argv[1]); "
            "print(m.metadata.flavors and ','.join(sorted(m.metadata.flavors)))"
        )
        try:
            done = run_command(
                [str(python), "-c", check, uri], timeout=300, merge_output=False,
                env={"MLFLOW_TRACKING_URI": self.tracking_url, "PATH": "/usr/bin:/bin"},
            )  # fmt: skip
        except CommandTimeoutError as e:
            raise PostTrainingFailure(f"loading {uri} took more than 300 s") from e
        if done.returncode != 0:
            tail = " | ".join(done.errors.strip().splitlines()[-3:])
            raise PostTrainingFailure(f"the project's environment cannot load {uri}: {tail}")
        _add_uvicorn_launcher(self.environment)
        return {
            "model_uri": uri,
            "version": str(model.get("version")),
            "environment": str(self.environment),
            "flavors": done.output.strip(),
        }

    def _build_image(self, uri: str, model: dict[str, Any]) -> dict[str, Any]:
        """Run the image builder's `build-inference` as a one-shot service and follow it."""
        assert self.images is not None
        stage = ImageStage(
            settings=self.images, orchestrator=self.orchestrator, store=self.store,
            deploy=self.deploy, events=self.events, check_cancelled=self.check_cancelled,
        )  # fmt: skip
        command = [
            "python", "-m", "image_builder", "build-inference", "--model-uri", uri,
            "--registry", self.images.registry, "--customer", self.customer,
            "--project-id", self.project_id, "--platforms", ",".join(self.platforms),
            "--base-image", self.images.base_image, "--flavor", self.flavor,
            "--tls-verify" if self.images.tls_verify else "--insecure-registry",
        ]  # fmt: skip
        # The tracking URI may carry credentials: environment, not argv.
        env = {**self.callback_env, "MLFLOW_TRACKING_URI": self._services_tracking_url}
        spec = stage.builder_spec(f"ib{self.project_id}", command, env)
        try:
            builder = self.deploy(spec)
        except OrchestratorError as e:
            raise PostTrainingFailure(f"cannot start the image builder: {e}") from e
        try:
            built = stage.follow(builder, _inference_image)
        except BuildFailure as e:
            raise PostTrainingFailure(str(e)) from e
        finally:
            self._undeploy_quietly(builder)
        return {"model_uri": uri, "version": str(model.get("version")), **built}

    def _undeploy_quietly(self, service_id: str) -> None:
        try:
            self.orchestrator.undeploy(service_id, timeout=UNDEPLOY_TIMEOUT_S)
        except OrchestratorError:
            _log.exception("project=%s cannot undeploy %s", self.project_id, service_id)
            return
        self.store.mark_undeployed(service_id)

    # -- deploy ---------------------------------------------------------------------------

    def _deploy(self, model: dict[str, Any], built: dict[str, Any]) -> dict[str, Any]:
        if not built:
            raise PostTrainingFailure("nothing was built to deploy")
        port = self.free_port()
        if self.images is None:
            assert self.environment is not None
            capabilities = self.orchestrator.capabilities
            remote = capabilities.services_on_other_hosts
            image = (
                inference_image_ref(self.image_registry, self.customer, self.project_id,
                                    str(model.get("version")))
                if capabilities.needs_image_names else None
            )  # fmt: skip
            spec = ServiceSpec(
                name=f"inf{self.project_id}"[:30], project_id=self.project_id,
                role=INFERENCE_ROLE, environment_path=self.environment, image=image,
                command=["python", "-m", "mlflow", "models", "serve", "-m", built["model_uri"],
                         "--env-manager", "local", "--host",
                         "0.0.0.0" if remote else "127.0.0.1", "--port", str(port),
                         "--workers", "1"],
                env={"MLFLOW_TRACKING_URI": self._services_tracking_url},
                ports=[PortMapping(container_port=port)],
                resources=Resources(memory_mb=_INFERENCE_MEMORY_MB),
                restart=RestartPolicy(policy="on_failure", max_restarts=3),
            )  # fmt: skip
        else:
            # The image's entrypoint is `mlflow models serve ... --host 0.0.0.0`; its command
            # is the port (8080 by default), chosen here so that projects sharing a host
            # (host networking) do not collide.
            spec = ServiceSpec(
                name=f"inf{self.project_id}"[:30], project_id=self.project_id,
                role=INFERENCE_ROLE, image=built["image"], command=["--port", str(port)],
                platforms=list(self.platforms), ports=[PortMapping(container_port=port)],
                resources=Resources(memory_mb=_INFERENCE_MEMORY_MB),
                restart=RestartPolicy(policy="on_failure", max_restarts=3),
            )  # fmt: skip
        try:
            service_id = self.deploy(spec)
        except OrchestratorError as e:
            raise PostTrainingFailure(f"cannot start the inference service: {e}") from e
        url = self._wait_ready(service_id, port)
        return {"url": url, "invocations": f"{url}/invocations", "service_id": service_id}

    def _wait_ready(self, service_id: str, port: int) -> str:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            self.check_cancelled()
            state = self.orchestrator.status(service_id)
            if state.status.terminal:
                lines = self.orchestrator.logs(service_id, tail=6)
                tail = " | ".join(line.strip() for line in lines if line.strip())
                raise PostTrainingFailure(
                    f"the inference service ended ({state.status.value}"
                    + (f", exit code {state.exit_code}" if state.exit_code is not None else "")
                    + f") before answering: {tail or state.message}"
                )
            address = state.address if self.orchestrator.capabilities.address_after_start else None
            url = f"http://{address or f'127.0.0.1:{port}'}"
            if state.status is ServiceStatus.RUNNING:
                try:
                    if httpx.get(f"{url}/ping", timeout=2.0).status_code == 200:
                        return url
                except httpx.TransportError:
                    pass
            if time.monotonic() > deadline:
                raise PostTrainingFailure(
                    f"the inference service did not answer {url}/ping within "
                    f"{_READY_TIMEOUT_S:.0f} s"
                )
            time.sleep(_POLL_S)


def _inference_image(data: dict[str, Any]) -> dict[str, str]:
    image = data.get("image")
    if not image or "@sha256:" not in str(image):
        raise BuildFailure(f"the image builder reported no inference image: {data}")
    result = {"image": str(image), "platforms": ",".join(data.get("platforms") or [])}
    timings = data.get("timings")
    if isinstance(timings, dict):
        result["build_timings"] = ", ".join(f"{k} {float(v):.1f} s" for k, v in timings.items())
    return result


def _add_uvicorn_launcher(environment: Path) -> None:
    """`mlflow models serve` runs `uvicorn` from PATH; the environment imports it (the FLOps
    runtime's packages are on its path) but has no script for it: add one that runs it with
    the environment's own Python."""
    launcher = environment / "bin" / "uvicorn"
    if launcher.exists():
        return
    partial = launcher.with_name(".uvicorn.partial")
    partial.write_text(f'#!/bin/sh\nexec "{environment / "bin" / "python"}" -m uvicorn "$@"\n')
    partial.chmod(0o755)
    partial.replace(launcher)


def _version_uri(model: dict[str, Any]) -> str:
    """`models:/<name>/<version>`: the exact version, even if the alias moves later."""
    name, version = model.get("name"), model.get("version")
    if not name or not version:
        raise PostTrainingFailure(f"the registered model is incomplete: {model}")
    return f"models:/{name}/{version}"
