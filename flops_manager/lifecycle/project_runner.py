"""One project's lifecycle on this manager, run on a thread of its own.

The runner walks the states of DESIGN.md: `building` (check out the repo at its ref, check the
contract, then build or reuse the Python environment on `local`, or the container images on
container backends, see `image_stage`), `training` (deploy the aggregator, then the
learners, then follow both the events they report and their process status, so that a crash is
noticed even when no event arrives), then `completed`, `failed` or `cancelled`. Whatever the
outcome, every service the project started is undeployed before the final state is written,
so a final state always means nothing of the project is left running.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from flops_core.image_names import image_refs
from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_core.repo_checker import check_repo
from flops_core.repos import RepoFetchError, RepoPolicyError, fetch_repo
from flops_core.round_config import strategy_problem
from flops_manager.core.data_tags import DataTagError, stored_data_tags
from flops_manager.environments import EnvironmentBuildError
from flops_manager.lifecycle.cluster_plan import plan_clusters
from flops_manager.lifecycle.embedded_stack import StackError
from flops_manager.lifecycle.image_stage import BuildFailure, ImageStage
from flops_manager.lifecycle.learner_shortfall import LearnerGroup, hierarchy_groups
from flops_manager.lifecycle.mlflow_outcome import confirmed_training, describe_confirmation
from flops_manager.lifecycle.mlflow_runs import RunStatus, end_running_runs
from flops_manager.lifecycle.post_training import INFERENCE_ROLE, PostTraining, PostTrainingFailure
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext, ServiceRuntime
from flops_manager.lifecycle.teardown import undeploy_live
from flops_manager.lifecycle.training_watch import ProjectFailure, TrainingWatch
from flops_manager.orchestrators import (
    Placement,
    PortMapping,
    Resources,
    ServiceSpec,
)
from flops_manager.orchestrators.orchestrator import OrchestratorError
from flops_manager.schemas import ProjectCreate, ProjectState
from flops_manager.schemas.project import PostTrainingStep
from flops_utils.ml_data_client import MLDataError

__all__ = ["ProjectFailure", "ProjectRunner", "RunnerContext"]

_log = get_logger("manager.runner")
_POLL_S = 0.5


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
            orchestrator=context.orchestrator, orchestrator_kind=context.orchestrator_kind,
            store=store, events=self.events, check_cancelled=self._check_cancelled,
            schedule_timeout_s=context.schedule_timeout_s,
            confirm_outcome=self._confirm_from_mlflow,
        )  # fmt: skip
        self._commit = ""
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
            final = (ProjectState.FAILED, f"the {self.context.orchestrator_kind} orchestrator "
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
            raise ProjectFailure(f"the {self.context.orchestrator_kind} orchestrator cannot take "
                                 f"work: {health.message}")  # fmt: skip
        self.store.transition(ProjectState.BUILDING, "checking out the repo")
        repo = self._checkout()
        self._check_cancelled()
        runtime = self._service_runtime(repo)
        self._check_cancelled()
        self.context.stack.ensure_started()
        self._check_cancelled()
        config = self.body.training_configuration
        if config.mode == "hierarchical":
            message, result = self._train_hierarchical(runtime)
        else:
            message, result = self._train_classic(runtime)
        if self.body.post_training_steps:
            message, result = self._post_training(runtime, message, result)
        return message, result

    def _train_classic(self, runtime: ServiceRuntime) -> tuple[str, dict[str, Any]]:
        config = self.body.training_configuration
        self.store.transition(
            ProjectState.TRAINING,
            f"starting the aggregator and {config.deployed_learners} learners",
            tracking_url=self.context.stack.tracking_url,
        )
        aggregator, address = self._deploy_aggregator(runtime, name=f"agg{self.project_id}")
        learners = self._deploy_learners(
            runtime, {address: list(range(config.deployed_learners))}, {}
        )
        group = LearnerGroup("aggregator", learners, config.min_available_clients,
                             config.min_fit_clients)  # fmt: skip
        succeeded = self.watch.follow(aggregator, learners, groups=[group])
        if succeeded.get("confirmed_by"):
            message = f"trained {config.training_rounds} rounds; {describe_confirmation(succeeded)}"
            return message, {"training": succeeded}
        metrics = succeeded.get("metrics", {})
        model = succeeded.get("model") or {}
        message = (
            f"trained {config.training_rounds} rounds; best round {succeeded.get('best_round')}"
            + (f": accuracy {metrics['accuracy']:.3f}" if "accuracy" in metrics else "")
            + (f"; model {model['name']} version {model['version']}" if model else "")
        )
        return message, {"training": succeeded}

    def _train_hierarchical(self, runtime: ServiceRuntime) -> tuple[str, dict[str, Any]]:
        """One cluster aggregator and its learners per cluster, a root aggregator above."""
        config = self.body.training_configuration
        plan = plan_clusters(
            self.context.orchestrator, self.context.orchestrator_kind,
            self.context.configured_clusters, config.learners,
            min_available=config.min_available_clients, nodes=self.context.stack.nodes,
        )  # fmt: skip
        learners_of, placed, active = plan.learners_of, plan.placeable, plan.active
        if plan.simulated:
            self.store.event("clusters_simulated", plan.describe(), data=plan.split())
        for name in plan.empty:
            self.store.event(
                "cluster_without_learners",
                f"cluster {name} gets no learner ({plan.learners} learners for "
                f"{len(learners_of)} clusters); it takes no part in training",
            )
        self.store.transition(
            ProjectState.TRAINING,
            f"starting the root aggregator, {len(active)} cluster aggregators "
            f"({', '.join(active)}) and {plan.learners} learners",
            tracking_url=self.context.stack.tracking_url,
        )
        root, root_address = self._deploy_aggregator(
            runtime, name=f"root{self.project_id}", hierarchy=["--hierarchy", "root"],
            rounds=config.training_cycles, minimum=(len(active),) * 3,
        )  # fmt: skip
        cluster_aggregators: list[str] = []
        addresses: dict[str, list[int]] = {}
        cluster_of_address: dict[str, str] = {}
        for index, name in enumerate(active):
            size = len(learners_of[name])
            minimum = (
                min(config.min_available_clients, size), min(config.min_fit_clients, size),
                min(config.min_evaluate_clients, size),
            )  # fmt: skip
            service_id, address = self._deploy_aggregator(
                runtime, name=f"c{index}{self.project_id}", rounds=config.training_rounds,
                minimum=minimum, cluster=name if name in placed else None,
                hierarchy=["--hierarchy", "cluster", "--cluster", name,
                           "--root-address", root_address],
            )  # fmt: skip
            cluster_aggregators.append(service_id)
            addresses[address] = learners_of[name]
            cluster_of_address[address] = name
        placement = {a: c for a, c in cluster_of_address.items() if c in placed}
        learners = self._deploy_learners(runtime, addresses, placement, plan.node_of)
        ids = iter(learners)  # deployed in the order of `addresses`
        members = {cluster_of_address[a]: [next(ids) for _ in i] for a, i in addresses.items()}
        groups = hierarchy_groups(cluster_aggregators, members, config.min_available_clients,
                                  config.min_fit_clients)  # fmt: skip
        succeeded = self.watch.follow(
            root, cluster_aggregators + learners, cluster_aggregators, groups=groups
        )
        if succeeded.get("confirmed_by"):
            message = (f"trained {config.training_cycles} cycles in {len(active)} clusters; "
                       f"{describe_confirmation(succeeded)}")  # fmt: skip
            return message, {"training": succeeded}
        metrics = succeeded.get("metrics", {})
        model = succeeded.get("model") or {}
        message = (
            f"trained {config.training_cycles} cycles of {config.training_rounds} rounds in "
            f"{len(active)} clusters; best cycle {succeeded.get('best_round')}"
            + (f": accuracy {metrics['accuracy']:.3f}" if "accuracy" in metrics else "")
            + (f"; model {model['name']} version {model['version']}" if model else "")
        )
        return message, {"training": succeeded, "clusters": {c: len(learners_of[c]) for c in
                                                             active}}  # fmt: skip

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
            orchestrator_kind=self.context.orchestrator_kind, deploy=self._deploy_spec,
            events=self.events, check_cancelled=self._check_cancelled,
            tracking_url=self.context.stack.tracking_url, callback_env=self._callback_env(),
            free_port=_free_port, environment=runtime.environment, images=self.context.images,
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

    def _checkout(self) -> Path:
        dest = self.context.work_dir / self.project_id / "repo"
        try:
            checkout = fetch_repo(
                self.repo_url, dest, ref=self.body.ml_repo_ref, policy=self.context.repo_policy
            )
        except (RepoFetchError, RepoPolicyError) as e:
            raise ProjectFailure(f"cannot check out the repo: {e}") from e
        self.store.set_commit(checkout.commit)
        self._commit = checkout.commit
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

    def _service_runtime(self, repo: Path) -> ServiceRuntime:
        images = self.context.images
        if images is None:
            environment = self._environment(repo)
            refs: dict[str, str] = {}
            if self.context.orchestrator_kind == "oakestra":
                refs = image_refs(
                    self.context.image_registry, self.body.customer_id, self.repo_url,
                    self._commit,
                )  # fmt: skip
            return ServiceRuntime(
                environment=environment, repo_dir=repo, learner_image=refs.get("learner"),
                aggregator_image=refs.get("aggregator"),
            )  # fmt: skip
        stage = ImageStage(
            settings=images, orchestrator=self.context.orchestrator, store=self.store,
            deploy=self._deploy_spec, events=self.events, check_cancelled=self._check_cancelled,
        )  # fmt: skip
        try:
            built = stage.ensure(
                repo_url=self.repo_url, commit=self._commit, customer=self.body.customer_id,
                flavor=self.body.ml_model_flavor.value,
                platforms=list(self.body.supported_platforms), callback_env=self._callback_env(),
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

    def _deploy_aggregator(
        self, runtime: ServiceRuntime, *, name: str, hierarchy: list[str] | None = None,
        rounds: int | None = None, minimum: tuple[int, int, int] | None = None,
        cluster: str | None = None,
    ) -> tuple[str, str]:  # fmt: skip
        """Deploy an aggregator; its service id and the address learners connect to."""
        config = self.body.training_configuration
        port = _free_port()
        remote = self.context.orchestrator_kind == "oakestra"
        listen = f"{'0.0.0.0' if remote else '127.0.0.1'}:{port}"
        available, fit, evaluate = minimum or (
            config.min_available_clients,
            config.min_fit_clients,
            config.min_evaluate_clients,
        )
        command = [
            "python", "-m", "flops_aggregator", "--project-id", self.project_id,
            "--repo-dir", runtime.code_dir, "--flavor", self.body.ml_model_flavor.value,
            "--rounds", str(rounds or config.training_rounds),
            "--min-available-clients", str(available),
            "--min-fit-clients", str(fit),
            "--min-evaluate-clients", str(evaluate),
            "--strategy", config.strategy,
            "--address", listen,
            "--round-timeout", str(config.round_timeout_s),
            "--connect-timeout", str(config.connect_timeout_s),
            "--mlflow-uri", self.context.stack.tracking_url,
            *(hierarchy or []),
        ]  # fmt: skip
        # What the user wrote goes in the environment: argv is size-limited and public (`ps`).
        env = {
            "FLOPS_STRATEGY_PARAMS": json.dumps(config.strategy_params),
            "FLOPS_REPO_URL": redact_url(self.repo_url),
        }
        if hierarchy and hierarchy[1] == "root":
            # Each root round waits for `training_rounds` cluster rounds.
            command[command.index("--round-timeout") + 1] = str(
                config.round_timeout_s * (config.training_rounds + 1)
            )
        platforms: list[str] = list(self.body.supported_platforms)
        ports = [PortMapping(container_port=port)] if remote else []
        service_id = self._deploy(
            "aggregator", name, command, runtime, platforms, ports=ports,
            placement=Placement(cluster=cluster), env=env,
        )  # fmt: skip
        if not remote:
            return service_id, f"127.0.0.1:{port}"
        state = self.watch.wait_started(service_id, f"aggregator {name}")
        return service_id, state.address or f"127.0.0.1:{port}"

    def _deploy_learners(
        self, runtime: ServiceRuntime, learners: dict[str, list[int]], clusters: dict[str, str],
        nodes: Mapping[int, int] | None = None,
    ) -> list[str]:  # fmt: skip
        """Deploy learners by the aggregator address they train with; their service ids.

        Learner `i` reads the data of node `nodes[i]`, by default of node `i` (modulo the nodes).
        """
        config = self.body.training_configuration
        try:
            data_tags = stored_data_tags(self.body.customer_id, config.data_tags)
        except DataTagError as e:
            raise ProjectFailure(f"training_configuration.data_tags: {e}") from e
        specs = []
        for address, indexes in learners.items():
            for i in indexes:
                command = [
                    "python", "-m", "flops_learner", "--project-id", self.project_id,
                    "--name", f"learner{i}", "--repo-dir", runtime.code_dir,
                    "--aggregator", address,
                    "--data-server", self.context.stack.data_server((nodes or {}).get(i, i)),
                    "--connect-timeout", str(config.connect_timeout_s),
                ]  # fmt: skip
                specs.append(
                    self._spec(
                        "learner",
                        f"l{i}{self.project_id}"[:30],
                        command,
                        runtime,
                        self.body.learner_platform(i),
                        placement=Placement(cluster=clusters.get(address)),
                        env={"FLOPS_DATA_TAGS": ",".join(data_tags)},
                    )
                )
        try:
            self._check_cancelled()
            ids = self.context.orchestrator.deploy_many(specs)
        except OrchestratorError as e:
            raise ProjectFailure(f"cannot start the learners: {e}") from e
        for service_id in ids:
            self.store.add_service(service_id, "learner", self.context.orchestrator_kind)
        if self.context.orchestrator_kind == "oakestra":
            for service_id, spec in zip(ids, specs, strict=True):
                self.watch.wait_started(service_id, f"learner {spec.name}")
        return ids

    def _confirm_from_mlflow(self) -> dict[str, Any] | None:
        """The training as MLflow records it, asked when the aggregator's outcome was lost."""
        confirmed = confirmed_training(self.context.stack.tracking_url, self.project_id)
        if confirmed is not None:
            self.store.event("outcome_confirmed", describe_confirmation(confirmed), data=confirmed)
        return confirmed

    def _callback_env(self) -> dict[str, str]:
        base = self.context.callback_base_url
        return {
            "FLOPS_CALLBACK_URL": f"{base}/api/flops/projects/{self.project_id}/callbacks",
            "FLOPS_CALLBACK_TOKEN": self.callback_token,
        }

    def _spec(
        self, role: str, name: str, command: list[str], runtime: ServiceRuntime,
        platforms: list[str], *, ports: list[PortMapping] | None = None,
        placement: Placement | None = None, env: dict[str, str] | None = None,
    ) -> ServiceSpec:  # fmt: skip
        """A service of the project; user-supplied values go in `env`, never in `command`."""
        limits = self.body.resource_constraints
        return ServiceSpec(
            name=name, project_id=self.project_id, role=role, command=command, one_shot=True,
            platforms=list(platforms), **runtime.spec_fields(role),
            resources=Resources(memory_mb=limits.memory, vcpus=limits.vcpus),
            env={**(env or {}), **self._callback_env()}, ports=ports or [],
            placement=placement or Placement(),
        )  # fmt: skip

    def _deploy(
        self, role: str, name: str, command: list[str], runtime: ServiceRuntime,
        platforms: list[str], *, ports: list[PortMapping] | None = None,
        placement: Placement | None = None, env: dict[str, str] | None = None,
    ) -> str:  # fmt: skip
        spec = self._spec(role, name, command, runtime, platforms, ports=ports,
                          placement=placement, env=env)  # fmt: skip
        try:
            return self._deploy_spec(spec)
        except OrchestratorError as e:
            raise ProjectFailure(f"cannot start the {role} {name}: {e}") from e

    def _deploy_spec(self, spec: ServiceSpec) -> str:
        """Deploy a spec and record it as one of the project's services."""
        self._check_cancelled()
        service_id = self.context.orchestrator.deploy(spec)
        self.store.add_service(service_id, spec.role, self.context.orchestrator_kind)
        return service_id

    def _undeploy_all(self, keep: Collection[str] = ()) -> None:
        undeploy_live(self.store, self.context.orchestrator, keep=keep)

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise _Cancelled


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
