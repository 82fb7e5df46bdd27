"""The `building` state of a project: its repo checked out and checked, and what it runs.

The repo is fetched at the body's ref and checked against the ML-repo contract and the
chosen strategy. Then the services' runtime is built or reused: on the embedded default
(no image settings) a Python environment of the repo's dependencies, whose overrides,
relaxed pins and warnings become the project's events; on container backends the learner
and aggregator images, built by the image builder (`image_stage`).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flops_core.image_names import image_refs
from flops_core.redact import redact_url
from flops_core.repo_checker import check_repo
from flops_core.repos import RepoFetchError, RepoPolicyError, fetch_repo
from flops_core.round_config import strategy_problem
from flops_manager.environments import EnvironmentBuildError
from flops_manager.lifecycle.image_stage import BuildFailure, ImageStage
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext, ServiceRuntime
from flops_manager.lifecycle.training_watch import ProjectFailure
from flops_manager.orchestrators import ServiceSpec
from flops_manager.schemas import ProjectCreate

__all__ = ["BuildingStage"]


@dataclass
class BuildingStage:
    """Prepares one project's code and runtime for its services.

    Parameters
    ----------
    context : RunnerContext
        Where to work, the environment builder, the image settings and the orchestrator.
    store : ProjectStore
        Where the commit and the build's events are written.
    body : ProjectCreate
        The project's request: ref, flavour, platforms, strategy.
    repo_url : str
        The repo to check out (may carry credentials; never shown).
    deploy : Callable[[ServiceSpec], str]
        Deploys and records the image builder.
    events : queue.Queue[dict[str, Any]]
        The events the project's services report (the image builder's among them).
    check_cancelled : Callable[[], None]
        Raises when the project was cancelled.
    callback_env : dict[str, str]
        The environment through which the image builder reports to the manager.
    """

    context: RunnerContext
    store: ProjectStore
    body: ProjectCreate
    repo_url: str
    deploy: Callable[[ServiceSpec], str]
    events: queue.Queue[dict[str, Any]]
    check_cancelled: Callable[[], None]
    callback_env: dict[str, str]
    commit: str = ""
    """The commit checked out; empty until `checkout()`."""

    @property
    def project_id(self) -> str:
        """The project being built."""
        return self.store.project_id

    def checkout(self) -> Path:
        """Check out the repo at the body's ref and check it: its local path."""
        dest = self.context.work_dir / self.project_id / "repo"
        try:
            checkout = fetch_repo(
                self.repo_url, dest, ref=self.body.ml_repo_ref, policy=self.context.repo_policy
            )
        except (RepoFetchError, RepoPolicyError) as e:
            raise ProjectFailure(f"cannot check out the repo: {e}") from e
        self.store.set_commit(checkout.commit)
        self.commit = checkout.commit
        self.store.event("repo_checked_out", f"commit {checkout.commit}")
        report = check_repo(checkout.path)
        if not report.ok:
            # Users know their repo by its URL; the manager's own paths are none of their business.
            problems = report.format_problems().replace(str(checkout.path), "the repo")
            raise ProjectFailure(f"{redact_url(self.repo_url)}: {problems}")
        unfit = strategy_problem(checkout.path, self.body.training_configuration.strategy)
        if unfit is not None:
            raise ProjectFailure(f"{redact_url(self.repo_url)}: {unfit}")
        return checkout.path

    def service_runtime(self, repo: Path) -> ServiceRuntime:
        """Build (or reuse) what the services run: the environment, or the images."""
        images = self.context.images
        if images is None:
            environment = self._environment(repo)
            refs: dict[str, str] = {}
            if self.context.orchestrator.capabilities.needs_image_names:
                refs = image_refs(
                    self.context.image_registry, self.body.customer_id, self.repo_url,
                    self.commit,
                )  # fmt: skip
            return ServiceRuntime(
                environment=environment, repo_dir=repo, learner_image=refs.get("learner"),
                aggregator_image=refs.get("aggregator"),
            )  # fmt: skip
        stage = ImageStage(
            settings=images, orchestrator=self.context.orchestrator, store=self.store,
            deploy=self.deploy, events=self.events, check_cancelled=self.check_cancelled,
        )  # fmt: skip
        try:
            built = stage.ensure(
                repo_url=self.repo_url, commit=self.commit, customer=self.body.customer_id,
                flavor=self.body.ml_model_flavor.value,
                platforms=list(self.body.supported_platforms), callback_env=self.callback_env,
            )  # fmt: skip
        except BuildFailure as e:
            raise ProjectFailure(str(e)) from e
        return ServiceRuntime(learner_image=built.learner, aggregator_image=built.aggregator)

    def _environment(self, repo: Path) -> Path:
        try:
            built = self.context.builder.ensure(
                repo, on_progress=lambda line: self.store.event("build_progress", line)
            )
        except EnvironmentBuildError as e:
            raise ProjectFailure(f"cannot install the repo's dependencies: {e}") from e
        for override in built.overrides:
            self.store.event("dependency_override", str(override))
        for relaxed in built.relaxed:
            self.store.event(
                "dependency_relaxed",
                str(relaxed),
                data={
                    "package": relaxed.package,
                    "asked": relaxed.asked,
                    "got": relaxed.got,
                    "why": relaxed.why,
                },
            )
        for warning in built.warnings:
            self.store.event("warning", warning)
        return built.path
