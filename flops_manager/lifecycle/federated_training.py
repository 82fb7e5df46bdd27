"""Training a project's model: classic FL, or hierarchical FL in clusters.

Classic FL deploys one aggregator and the learners, all training with it. Hierarchical FL
deploys a root aggregator, one cluster aggregator per cluster that gets learners (where the
clusters come from: `cluster_plan`) and the learners of each cluster, training with their
cluster's aggregator. Where the orchestrator `places_on_nodes`, the learners go to the
registered nodes that hold the project's data (`node_placement`), and hierarchical FL trains
in the clusters of those nodes, each cluster's aggregator pinned there. Both then follow the
services (`TrainingWatch`) until the top aggregator's outcome, and describe it in one sentence
for the project's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flops_manager.core.data_tags import DataTagError
from flops_manager.lifecycle.cluster_plan import ClusterPlan, plan_clusters
from flops_manager.lifecycle.learner_shortfall import LearnerGroup, hierarchy_groups
from flops_manager.lifecycle.mlflow_outcome import describe_confirmation
from flops_manager.lifecycle.node_placement import NodePlacementError, NodePlan, place_learners
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext, ServiceRuntime
from flops_manager.lifecycle.service_deployer import ServiceDeployer
from flops_manager.lifecycle.training_watch import ProjectFailure, TrainingWatch
from flops_manager.schemas import ProjectCreate, ProjectState

__all__ = ["FederatedTraining", "place_on_nodes"]


@dataclass
class FederatedTraining:
    """Runs the `training` state of one project; each mode returns its message and result.

    Parameters
    ----------
    context : RunnerContext
        The orchestrator, the configured clusters and the shared stack.
    store : ProjectStore
        Where the project's state and events are written.
    body : ProjectCreate
        The project's request, with its training configuration.
    deployer : ServiceDeployer
        Deploys the aggregators and learners.
    watch : TrainingWatch
        Follows them until the outcome.
    """

    context: RunnerContext
    store: ProjectStore
    body: ProjectCreate
    deployer: ServiceDeployer
    watch: TrainingWatch

    @property
    def project_id(self) -> str:
        """The project being trained."""
        return self.store.project_id

    def classic(self, runtime: ServiceRuntime) -> tuple[str, dict[str, Any]]:
        """One aggregator, and every learner training with it."""
        config = self.body.training_configuration
        placed = self._place_on_nodes()
        count = len(placed.learners) if placed is not None else config.deployed_learners
        self.store.transition(
            ProjectState.TRAINING,
            f"starting the aggregator and {count} learners",
            tracking_url=self.context.services_tracking_url,
        )
        aggregator, address = self.deployer.aggregator(runtime, name=f"agg{self.project_id}")
        learners = self.deployer.learners(runtime, {address: list(range(count))}, {}, placed=placed)
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

    def hierarchical(self, runtime: ServiceRuntime) -> tuple[str, dict[str, Any]]:
        """One cluster aggregator and its learners per cluster, a root aggregator above."""
        config = self.body.training_configuration
        on_nodes = self._place_on_nodes()
        if on_nodes is not None:
            # The clusters of the nodes that hold the data; each cluster's aggregator there.
            plan = ClusterPlan({c: on_nodes.learners_of(c) for c in on_nodes.clusters},
                               frozenset(on_nodes.clusters))  # fmt: skip
        else:
            plan = plan_clusters(
                self.context.orchestrator, self.context.configured_clusters, config.learners,
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
            tracking_url=self.context.services_tracking_url,
        )
        root, root_address = self.deployer.aggregator(
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
            service_id, address = self.deployer.aggregator(
                runtime, name=f"c{index}{self.project_id}", rounds=config.training_rounds,
                minimum=minimum, cluster=name if name in placed else None,
                hierarchy=["--hierarchy", "cluster", "--cluster", name,
                           "--root-address", root_address],
            )  # fmt: skip
            cluster_aggregators.append(service_id)
            addresses[address] = learners_of[name]
            cluster_of_address[address] = name
        placement = {a: c for a, c in cluster_of_address.items() if c in placed}
        learners = self.deployer.learners(runtime, addresses, placement, plan.node_of, on_nodes)
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

    def _place_on_nodes(self) -> NodePlan | None:
        """The learners' nodes where the orchestrator `places_on_nodes` (an event names
        them), else `None`; `ProjectFailure` before anything is deployed if they cannot be."""
        placed = place_on_nodes(self.context, self.body)
        if placed is not None:
            self.store.event("learners_placed", placed.describe(), data=placed.event_data())
        return placed


def place_on_nodes(context: RunnerContext, body: ProjectCreate) -> NodePlan | None:
    """Place the project's learners on the registered nodes now (`node_placement`).

    Returns `None` where the orchestrator does not `places_on_nodes`.

    Raises
    ------
    ProjectFailure
        The nodes cannot take the learners; the message names the field and the nodes.
    """
    if not context.orchestrator.capabilities.places_on_nodes:
        return None
    try:
        return place_learners(context.registered_nodes(), body)
    except (NodePlacementError, DataTagError) as e:
        raise ProjectFailure(f"cannot place the learners: {e}") from e
