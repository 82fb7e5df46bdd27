"""One project's lifecycle on this manager, run on a thread of its own.

The runner walks the states of DESIGN.md: `building` (check out the repo at its ref, check the
contract, then build or reuse the Python environment on `local`, or the container images on
container backends, see `building_stage`), `training` (deploy the aggregator, then the
learners, then follow both the events they report and their process status, so that a crash is
noticed even when no event arrives, see `federated_training`), then `post_training` when the
body asks for it, and `completed`, `failed` or `cancelled`. Whatever the outcome, every service
the project started is undeployed before the final state is written, so a final state always
means nothing of the project is left running (a completed project's inference service aside).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection
from typing import Any

from flops_core.logs import get_logger
from flops_manager.lifecycle.building_stage import BuildingStage
from flops_manager.lifecycle.embedded_stack import StackError
from flops_manager.lifecycle.federated_training import FederatedTraining, place_on_nodes
from flops_manager.lifecycle.mlflow_outcome import confirmed_training, describe_confirmation
from flops_manager.lifecycle.mlflow_runs import RunStatus, end_running_runs
from flops_manager.lifecycle.post_training import INFERENCE_ROLE, PostTraining, PostTrainingFailure
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext, ServiceRuntime
from flops_manager.lifecycle.service_deployer import ServiceDeployer, free_port
from flops_manager.lifecycle.teardown import undeploy_live
from flops_manager.lifecycle.training_watch import ProjectFailure, TrainingWatch
from flops_manager.orchestrators.orchestrator import OrchestratorError
from flops_manager.schemas import ProjectCreate, ProjectState
from flops_manager.schemas.project import PostTrainingStep
from flops_utils.ml_data_client import MLDataError

__all__ = ["ProjectRunner"]

_log = get_logger("manager.runner")


class _Cancelled(Exception):
    """Raised inside the runner's thread when the project is cancelled; never leaves it."""


class ProjectRunner(threading.Thread):
    """Carry one project from `pending` to a final state."""

    def __init__(
        self, *, context: RunnerContext, store: ProjectStore, body: ProjectCreate,
        repo_url: str, callback_token: str,
    ) -> None:  # fmt: skip
        super().__init__(name=f"project-{store.project_id}", daemon=True)
        self.context = context
        self.store = store
        self.body = body
        self.repo_url = repo_url
        self.callback_token = callback_token
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.cancelled = threading.Event()
        self.watch = TrainingWatch(
            orchestrator=context.orchestrator, store=store, events=self.events,
            check_cancelled=self._check_cancelled,
            schedule_timeout_s=context.schedule_timeout_s,
            confirm_outcome=self._confirm_from_mlflow,
        )  # fmt: skip
        self.deployer = ServiceDeployer(
            context=context, store=store, body=body, repo_url=repo_url,
            callback_env=self._callback_env(), watch=self.watch,
            check_cancelled=self._check_cancelled,
        )  # fmt: skip
        self._stopped_by: str | None = None

    @property
    def project_id(self) -> str:
        """The project this runner carries."""
        return self.store.project_id

    def cancel(self, stopped_by: str | None = None) -> None:
        """Stop the project: its services are undeployed at once.

        Parameters
        ----------
        stopped_by : str | None
            `None` when a user asked (`DELETE`): the project becomes `cancelled`. Otherwise
            what stops the manager (`the manager was stopped (SIGTERM)`): nobody asked for
            the project to end, so it becomes `failed` with that reason and the state it was
            in, as a restarted manager records a project it found active.
        """
        if stopped_by is not None and not self.cancelled.is_set():
            state = self.store.state()
            self._stopped_by = (
                f"{stopped_by} while the project was {state.value if state else 'running'}; "
                "its services were stopped — submit the project again"
            )
        self.cancelled.set()
        self._undeploy_all()

    def run(self) -> None:
        """Run the lifecycle; never raises."""
        final: tuple[ProjectState, str, dict[str, Any]]
        try:
            final = (ProjectState.COMPLETED, *self._run())
        except _Cancelled:
            final = self._interrupted()
        except ProjectFailure as e:
            final = (ProjectState.FAILED, str(e), {})
        except OrchestratorError as e:
            final = (ProjectState.FAILED, f"the {self.context.orchestrator.kind} orchestrator "
                     f"failed: {e}", {})  # fmt: skip
        except (StackError, MLDataError) as e:  # their messages name the service and address
            final = (ProjectState.FAILED, str(e), {})
        except Exception as e:
            _log.exception("project=%s runner crashed", self.project_id)
            final = (ProjectState.FAILED, f"internal error in the manager: {type(e).__name__}", {})
        if self.cancelled.is_set() and final[0] is not ProjectState.COMPLETED:
            final = self._interrupted()
        # A completed project's inference service keeps answering until the project is deleted.
        keep = {INFERENCE_ROLE} if final[0] is ProjectState.COMPLETED else set[str]()
        self._undeploy_all(keep=keep)
        if final[0] is not ProjectState.COMPLETED:
            # Its aggregators are gone: a run they did not end would stay RUNNING for good.
            stopped = self.cancelled.is_set() or final[0] is ProjectState.CANCELLED
            status: RunStatus = "KILLED" if stopped else "FAILED"
            end_running_runs(self.context.stack.tracking_url, self.project_id, status)
        self.store.transition(final[0], final[1], **final[2])

    def _interrupted(self) -> tuple[ProjectState, str, dict[str, Any]]:
        """The final state of a project stopped from outside: by a user, or with the manager."""
        if self._stopped_by is not None:
            return ProjectState.FAILED, self._stopped_by, {}
        return ProjectState.CANCELLED, "cancelled by request; all services stopped", {}

    def _run(self) -> tuple[str, dict[str, Any]]:
        health = self.context.orchestrator.health()
        if not health.ok:
            raise ProjectFailure(f"the {self.context.orchestrator.kind} orchestrator cannot take "
                                 f"work: {health.message}")  # fmt: skip
        # Nodes that cannot take the learners fail the project before anything is deployed
        # (the image builder included); training places them again with the nodes it finds.
        place_on_nodes(self.context, self.body)
        self.store.transition(ProjectState.BUILDING, "checking out the repo")
        building = BuildingStage(
            context=self.context, store=self.store, body=self.body, repo_url=self.repo_url,
            deploy=self.deployer.deploy_spec, events=self.events,
            check_cancelled=self._check_cancelled, callback_env=self._callback_env(),
        )  # fmt: skip
        repo = building.checkout()
        self._check_cancelled()
        runtime = building.service_runtime(repo)
        self._check_cancelled()
        self.context.stack.ensure_started()
        self._check_cancelled()
        training = FederatedTraining(
            context=self.context, store=self.store, body=self.body, deployer=self.deployer,
            watch=self.watch,
        )  # fmt: skip
        if self.body.training_configuration.mode == "hierarchical":
            message, result = training.hierarchical(runtime)
        else:
            message, result = training.classic(runtime)
        if self.body.post_training_steps:
            message, result = self._post_training(runtime, message, result)
        return message, result

    def _post_training(
        self, runtime: ServiceRuntime, message: str, result: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Stop the FL services, then build and deploy the model's inference server."""
        self._undeploy_all()
        order = list(PostTrainingStep)  # build before deploy, whatever the body's order
        steps = sorted(set(self.body.post_training_steps), key=order.index)
        self.store.transition(
            ProjectState.POST_TRAINING,
            f"{message}; running {', '.join(step.value for step in steps)}",
            training=result.get("training", {}),
        )
        post = PostTraining(
            project_id=self.project_id, customer=self.body.customer_id,
            flavor=self.body.ml_model_flavor.value, platforms=list(self.body.supported_platforms),
            store=self.store, orchestrator=self.context.orchestrator,
            deploy=self.deployer.deploy_spec, events=self.events,
            check_cancelled=self._check_cancelled,
            tracking_url=self.context.stack.tracking_url,
            services_tracking_url=self.context.services_tracking_url,
            callback_env=self._callback_env(),
            free_port=free_port, environment=runtime.environment, images=self.context.images,
            image_registry=self.context.image_registry,
        )  # fmt: skip
        model = (result.get("training") or {}).get("model") or {}
        try:
            steps_done = post.run(steps, model)
        except PostTrainingFailure as e:
            raise ProjectFailure(f"{message}, but {e}") from e
        deployed = steps_done.get(PostTrainingStep.DEPLOY_TRAINED_MODEL_IMAGE.value) or {}
        if deployed.get("url"):
            message += f"; inference server at {deployed['url']}"
            result["inference_url"] = deployed["url"]
        elif built := steps_done.get(PostTrainingStep.BUILD_IMAGE_FOR_TRAINED_MODEL.value):
            image = built.get("image")
            message += f"; inference image {image}" if image else "; inference environment ready"
        return message, {**result, "post_training": steps_done}

    def _confirm_from_mlflow(self) -> dict[str, Any] | None:
        """The training as MLflow records it, asked when the aggregator's outcome was lost."""
        confirmed = confirmed_training(self.context.stack.tracking_url, self.project_id)
        if confirmed is not None:
            self.store.event("outcome_confirmed", describe_confirmation(confirmed), data=confirmed)
        return confirmed

    def _callback_env(self) -> dict[str, str]:
        """The environment through which the project's services report to the manager."""
        base = self.context.callback_base_url
        return {
            "FLOPS_CALLBACK_URL": f"{base}/api/flops/projects/{self.project_id}/callbacks",
            "FLOPS_CALLBACK_TOKEN": self.callback_token,
        }

    def _undeploy_all(self, keep: Collection[str] = ()) -> None:
        undeploy_live(self.store, self.context.orchestrator, keep=keep)

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise _Cancelled
