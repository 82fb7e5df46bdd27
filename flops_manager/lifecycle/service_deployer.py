"""Deploying a project's services: their specs, the aggregators and the learners.

Every service deployed here is recorded in the project's store at once, so that it is
undeployed whatever happens next. What the orchestrator can do decides how services are
reached (`Orchestrator.capabilities`): on this machine at `127.0.0.1`, or, where they may run
on other hosts, listening on every interface at the address the orchestrator reports once
they run.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flops_core.redact import redact_url
from flops_manager.core.data_tags import DataTagError, stored_data_tags
from flops_manager.lifecycle.node_placement import NodePlan
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext, ServiceRuntime
from flops_manager.lifecycle.training_watch import ProjectFailure, TrainingWatch
from flops_manager.orchestrators import (
    Placement,
    PortMapping,
    Resources,
    ServiceSpec,
)
from flops_manager.orchestrators.orchestrator import OrchestratorError
from flops_manager.schemas import ProjectCreate

__all__ = ["ServiceDeployer", "free_port"]


@dataclass
class ServiceDeployer:
    """Deploys one project's services and records each of them.

    Parameters
    ----------
    context : RunnerContext
        The orchestrator and the shared stack (tracking URL, data servers).
    store : ProjectStore
        Where the project's services are recorded.
    body : ProjectCreate
        The project's request: training configuration, flavour, platforms, limits.
    repo_url : str
        The repo, passed to aggregators without its credentials.
    callback_env : dict[str, str]
        The environment through which every service reports to the manager.
    watch : TrainingWatch
        Waits for services that are placed after `deploy()` returns.
    check_cancelled : Callable[[], None]
        Raises when the project was cancelled; asked before each deploy.
    """

    context: RunnerContext
    store: ProjectStore
    body: ProjectCreate
    repo_url: str
    callback_env: dict[str, str]
    watch: TrainingWatch
    check_cancelled: Callable[[], None]

    @property
    def project_id(self) -> str:
        """The project whose services these are."""
        return self.store.project_id

    def aggregator(
        self, runtime: ServiceRuntime, *, name: str, hierarchy: list[str] | None = None,
        rounds: int | None = None, minimum: tuple[int, int, int] | None = None,
        cluster: str | None = None,
    ) -> tuple[str, str]:  # fmt: skip
        """Deploy an aggregator; its service id and the address learners connect to."""
        config = self.body.training_configuration
        port = free_port()
        capabilities = self.context.orchestrator.capabilities
        remote = capabilities.services_on_other_hosts
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
            "--mlflow-uri", self.context.services_tracking_url,
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
        service_id = self.deploy(
            "aggregator", name, command, runtime, platforms, ports=ports,
            placement=Placement(cluster=cluster), env=env,
        )  # fmt: skip
        if not (capabilities.schedules_after_deploy or capabilities.address_after_start):
            return service_id, f"127.0.0.1:{port}"
        state = self.watch.wait_started(service_id, f"aggregator {name}")
        address = state.address if capabilities.address_after_start else None
        return service_id, address or f"127.0.0.1:{port}"

    def learners(
        self, runtime: ServiceRuntime, learners: dict[str, list[int]], clusters: dict[str, str],
        nodes: Mapping[int, int] | None = None, placed: NodePlan | None = None,
    ) -> list[str]:  # fmt: skip
        """Deploy learners by the aggregator address they train with; their service ids.

        Learner `i` reads the data of node `nodes[i]`, by default of node `i` (modulo the nodes),
        of the embedded stack. With `placed` (a backend that `places_on_nodes`), learner `i`
        runs pinned to its registered node, with the image of the node's platform, and reads
        that node's data server at the node's address.
        """
        config = self.body.training_configuration
        try:
            data_tags = stored_data_tags(self.body.customer_id, config.data_tags)
        except DataTagError as e:
            raise ProjectFailure(f"training_configuration.data_tags: {e}") from e
        on_nodes = {p.index: p for p in placed.learners} if placed is not None else {}
        specs = []
        for address, indexes in learners.items():
            for i in indexes:
                if (where := on_nodes.get(i)) is not None:
                    placement = Placement(cluster=where.node.cluster, node=where.node.name)
                    platforms, data_server = [where.platform], where.node.data_server_url
                else:
                    placement = Placement(cluster=clusters.get(address))
                    platforms = self.body.learner_platform(i)
                    data_server = self.context.stack.data_server((nodes or {}).get(i, i))
                command = [
                    "python", "-m", "flops_learner", "--project-id", self.project_id,
                    "--name", f"learner{i}", "--repo-dir", runtime.code_dir,
                    "--aggregator", address, "--data-server", data_server,
                    "--connect-timeout", str(config.connect_timeout_s),
                ]  # fmt: skip
                env = {"FLOPS_DATA_TAGS": ",".join(data_tags)}
                name = f"l{i}{self.project_id}"[:30]
                spec = self.spec("learner", name, command, runtime, platforms,
                                 placement=placement, env=env)  # fmt: skip
                specs.append(spec)
        try:
            self.check_cancelled()
            ids = self.context.orchestrator.deploy_many(specs)
        except OrchestratorError as e:
            raise ProjectFailure(f"cannot start the learners: {e}") from e
        for service_id in ids:
            self.store.add_service(service_id, "learner", self.context.orchestrator.kind)
        if self.context.orchestrator.capabilities.schedules_after_deploy:
            for service_id, spec in zip(ids, specs, strict=True):
                self.watch.wait_started(service_id, f"learner {spec.name}")
        return ids

    def spec(
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
            env={**(env or {}), **self.callback_env}, ports=ports or [],
            placement=placement or Placement(),
        )  # fmt: skip

    def deploy(
        self, role: str, name: str, command: list[str], runtime: ServiceRuntime,
        platforms: list[str], *, ports: list[PortMapping] | None = None,
        placement: Placement | None = None, env: dict[str, str] | None = None,
    ) -> str:  # fmt: skip
        """Deploy a service of the project (see `spec`); its id."""
        spec = self.spec(role, name, command, runtime, platforms, ports=ports,
                         placement=placement, env=env)  # fmt: skip
        try:
            return self.deploy_spec(spec)
        except OrchestratorError as e:
            raise ProjectFailure(f"cannot start the {role} {name}: {e}") from e

    def deploy_spec(self, spec: ServiceSpec) -> str:
        """Deploy a spec and record it as one of the project's services."""
        self.check_cancelled()
        service_id = self.context.orchestrator.deploy(spec)
        self.store.add_service(service_id, spec.role, self.context.orchestrator.kind)
        return service_id


def free_port() -> int:
    """A TCP port free on this machine now, for a service to listen on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
