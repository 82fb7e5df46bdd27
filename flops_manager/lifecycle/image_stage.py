"""The `building` stage on container backends: reuse the project's images or run the builder.

Images are named after (customer, repo, commit), so a project at a commit whose learner and
aggregator images are already in the registry, for every platform it asks for, skips the
build and says so in its events. Otherwise the image builder is deployed as a one-shot,
privileged service through the project's orchestrator, like any other service; it reports
`started`, one `step_completed` per step, then `succeeded` (image references with digests) or
`failed` (the step, the reason and the relevant output lines), and the stage also watches the
builder's service status, so that a builder that dies without a word is noticed.
"""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flops_core.errors import FlopsError
from flops_core.flops_tree import RUNTIME_LABEL, RuntimeSourceError, locate_flops_tree
from flops_core.image_names import image_refs
from flops_core.logs import get_logger
from flops_core.registry_client import RegistryUnavailableError, existing_images
from flops_manager.core.config import Settings, flops_version
from flops_manager.orchestrators import Orchestrator, ServiceSpec, ServiceStatus
from flops_manager.orchestrators.orchestrator import OrchestratorError

if TYPE_CHECKING:
    from flops_manager.lifecycle.project_store import ProjectStore

__all__ = ["BuildFailure", "ImageSettings", "ImageStage", "ProjectImages"]

_log = get_logger("manager.images")
_POLL_S = 0.5
DEFAULT_BASE = "flops/debian-python:bookworm"


class BuildFailure(FlopsError):
    """Raised when the project's images cannot be built or found; the message is for the user."""


@dataclass(frozen=True)
class ImageSettings:
    """Where images are built and kept (manager settings of container backends)."""

    registry: str
    tls_verify: bool
    base_image: str
    builder_image: str
    cache_volume: str = "flops-build-cache"
    storage_driver: str = "overlay"
    cache_max_mb: int = 20000

    @classmethod
    def from_settings(cls, settings: Settings, version: str | None = None) -> ImageSettings:
        """Fill the defaults that depend on the registry and the FLOps version."""
        registry = settings.registry.rstrip("/")
        return cls(
            registry=registry,
            tls_verify=settings.registry_tls_verify,
            base_image=settings.base_image or f"{registry}/{DEFAULT_BASE}",
            builder_image=settings.builder_image
            or f"{registry}/flops/image-builder:{version or flops_version()}",
            cache_volume=settings.builder_cache_volume,
            storage_driver=settings.builder_storage_driver,
            cache_max_mb=settings.builder_cache_max_mb,
        )


@dataclass(frozen=True)
class ProjectImages:
    """The images a project's services run, by digest."""

    learner: str
    aggregator: str
    reused: bool


class ImageStage:
    """Find or build one project's images.

    Parameters
    ----------
    settings : ImageSettings
        Registry, base and builder image.
    orchestrator : Orchestrator
        Runs the builder.
    store : ProjectStore
        The project's state and events.
    deploy : Callable[[ServiceSpec], str]
        Deploys a spec and records it as the project's service (so it is undeployed at the end).
    events : queue.Queue
        The events the project's services report.
    check_cancelled : Callable[[], None]
        Raises when the project was cancelled.
    """

    def __init__(
        self, *, settings: ImageSettings, orchestrator: Orchestrator, store: ProjectStore,
        deploy: Callable[[ServiceSpec], str], events: queue.Queue[dict[str, Any]],
        check_cancelled: Callable[[], None],
    ) -> None:  # fmt: skip
        self.settings = settings
        self.orchestrator = orchestrator
        self.store = store
        self.deploy = deploy
        self.events = events
        self.check_cancelled = check_cancelled

    def ensure(
        self, *, repo_url: str, commit: str, customer: str, flavor: str, platforms: list[str],
        callback_env: dict[str, str],
    ) -> ProjectImages:  # fmt: skip
        """Return the project's images, building them first if the registry lacks them.

        Raises
        ------
        BuildFailure
            The registry is unreachable, or the build failed (the message says where and why).
        """
        refs = image_refs(self.settings.registry, customer, repo_url, commit)
        try:
            found = existing_images(
                self.settings.registry,
                refs,
                platforms,
                tls_verify=self.settings.tls_verify,
                labels=_runtime_labels(),
            )
        except RegistryUnavailableError as e:
            raise BuildFailure(str(e)) from e
        if found is not None:
            self.store.event(
                "images_reused",
                f"images for commit {commit[:12]} ({', '.join(platforms)}) are in the registry "
                "already; skipping the build",
                data={"images": found},
            )
            return ProjectImages(found["learner"], found["aggregator"], reused=True)
        return self._build(repo_url, commit, customer, flavor, platforms, callback_env)

    def _build(
        self, repo_url: str, commit: str, customer: str, flavor: str, platforms: list[str],
        callback_env: dict[str, str],
    ) -> ProjectImages:  # fmt: skip
        project_id = self.store.project_id
        command = [
            "python", "-m", "image_builder", "build", "--commit", commit, "--flavor", flavor,
            "--platforms", ",".join(platforms), "--registry", self.settings.registry,
            "--customer", customer, "--project-id", project_id,
            "--base-image", self.settings.base_image,
            "--tls-verify" if self.settings.tls_verify else "--insecure-registry",
        ]  # fmt: skip
        # The repo URL may carry credentials: it goes in the environment, never in argv.
        spec = self.builder_spec(
            f"b{project_id}", command, {**callback_env, "FLOPS_REPO_URL": repo_url}
        )
        self.store.event(
            "build_started",
            f"building images for {', '.join(platforms)} with {self.settings.builder_image}",
        )
        started = time.monotonic()
        try:
            builder = self.deploy(spec)
        except OrchestratorError as e:
            raise BuildFailure(f"cannot start the image builder: {e}") from e
        images = self.follow(builder, _project_images)
        elapsed = time.monotonic() - started
        self.store.event(
            "images_built", f"images built and pushed in {elapsed:.0f} s", data={"images": images}
        )
        return ProjectImages(images["learner"], images["aggregator"], reused=False)

    def builder_spec(self, name: str, command: list[str], env: dict[str, str]) -> ServiceSpec:
        """A one-shot, privileged image-builder service with the layer cache volume."""
        return ServiceSpec(
            name=name[:30],
            project_id=self.store.project_id,
            role="builder",
            image=self.settings.builder_image,
            command=command,
            env={
                **env,
                "STORAGE_DRIVER": self.settings.storage_driver,
                "FLOPS_BUILDER_CACHE_MAX_MB": str(self.settings.cache_max_mb),
            },
            one_shot=True,
            privileged=True,
            # Buildah's storage, so that layers (the flavour base above all) are built once.
            volumes={self.settings.cache_volume: "/var/lib/containers"},
        )

    def follow(
        self, builder: str, result_of: Callable[[dict[str, Any]], dict[str, str]]
    ) -> dict[str, str]:
        """Follow a builder service to its `succeeded` event; `result_of` reads its data.

        Raises
        ------
        BuildFailure
            It reported `failed`, or ended without a result (the message says why).
        """
        while True:
            self.check_cancelled()
            try:
                event = self.events.get(timeout=_POLL_S)
            except queue.Empty:
                event = None
            if event is not None and event.get("source") == "builder":
                outcome = self._on_event(event, result_of)
                if outcome is not None:
                    return outcome
                continue
            state = self.orchestrator.status(builder)
            if state.status.terminal and self.events.empty():
                time.sleep(1.0)  # its last event may still be on its way
                if not self.events.empty():
                    continue
                lines = [line for line in self.orchestrator.logs(builder, tail=12) if line]
                code = "unknown" if state.exit_code is None else str(state.exit_code)
                detail = " | ".join(lines[-8:]) or state.message
                if state.status is ServiceStatus.COMPLETED:
                    detail = "it reported no images; " + detail
                raise BuildFailure(
                    f"the image builder ended (exit code {code}) without a result: {detail}"
                )

    def _on_event(
        self,
        event: dict[str, Any],
        result_of: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    ) -> dict[str, str] | None:
        data = event.get("data") or {}
        kind = event.get("type")
        if kind == "step_completed":
            step = data.get("step", "?")
            seconds = data.get("seconds", data.get("duration_s"))
            took = f" in {float(seconds):.1f} s" if isinstance(seconds, int | float) else ""
            self.store.event("build_step", f"{step} done{took}", source="builder", data=data)
        elif kind == "cache_pruned":
            self.store.event("build_cache_pruned", _pruned(data), source="builder", data=data)
        elif kind == "warning":
            reason = str(data.get("reason", "no reason given"))
            self.store.event("warning", f"image builder: {reason}", source="builder", data=data)
        elif kind == "succeeded":
            return (result_of or _project_images)(data)
        elif kind == "failed":
            step = data.get("step", "build")
            reason = data.get("reason", "no reason given")
            output = [str(line) for line in data.get("output") or [] if str(line).strip()]
            tail = (": " + " | ".join(output[-8:])) if output else ""
            raise BuildFailure(f"image build failed at step {step}: {reason}{tail}")
        return None


def _pruned(data: dict[str, Any]) -> str:
    """One line for operators from a `cache_pruned` event."""
    before, after = _size(data.get("bytes_before")), _size(data.get("bytes_after"))
    limit = _size(data.get("limit_bytes"))
    if data.get("skipped"):
        return f"build cache is {before}, over its limit of {limit}; not pruned: {data['skipped']}"
    removed = len(data.get("removed") or [])
    seconds = data.get("duration_s")
    took = f" in {float(seconds):.1f} s" if isinstance(seconds, int | float) else ""
    end, most = data.get("bytes_after"), data.get("limit_bytes")
    over = ""
    if isinstance(end, int | float) and isinstance(most, int | float) and end > most:
        over = "; still over it"
    pruned = f"build cache pruned from {before} to {after} (limit {limit}){took}"
    return f"{pruned}: {removed} images removed{over}"


def _size(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value / 1e9:.1f} GB" if value >= 1e9 else f"{value / 1e6:.1f} MB"


def _project_images(data: dict[str, Any]) -> dict[str, str]:
    images = data.get("images") or {}
    if not {"learner", "aggregator"} <= set(images):
        raise BuildFailure(f"the image builder reported incomplete images: {images}")
    return {role: str(ref) for role, ref in images.items()}


@functools.cache
def _runtime_labels() -> dict[str, str]:
    """What reused images must carry: this manager's FLOps runtime fingerprint."""
    try:
        return {RUNTIME_LABEL: locate_flops_tree().runtime_fingerprint()}
    except RuntimeSourceError as e:
        _log.warning("images are reused by commit only: %s", e)
        return {}
