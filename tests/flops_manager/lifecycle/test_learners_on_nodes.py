"""Deploying learners on the registered nodes that hold the data (`places_on_nodes`).

A recording orchestrator stands for Oakestra: it accepts specs, reports every service running
at a worker's address, and lets the test read what was asked. Training's outcome comes from a
stand-in watch, so that only placement and the specs are under test.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from flops_core.repos import RepoPolicy
from flops_manager.db import Database, Project, ProjectEvent
from flops_manager.environments import EnvironmentBuilder
from flops_manager.lifecycle.embedded_stack import EmbeddedStack
from flops_manager.lifecycle.federated_training import FederatedTraining
from flops_manager.lifecycle.learner_shortfall import LearnerGroup
from flops_manager.lifecycle.project_runner import ProjectRunner
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext, ServiceRuntime
from flops_manager.lifecycle.service_deployer import ServiceDeployer
from flops_manager.lifecycle.training_watch import ProjectFailure, TrainingWatch
from flops_manager.orchestrators import (
    Capabilities,
    ClusterInfo,
    NodeInfo,
    Orchestrator,
    OrchestratorHealth,
    Placement,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)
from flops_manager.schemas import ProjectCreate
from flops_manager.services.nodes import RegisteredNode
from tests.conftest import free_port
from tests.flops_manager.lifecycle.registered_nodes import registered_node

PUBLIC_MLFLOW = "http://10.0.0.1:5000"


class RecordingOrchestrator(Orchestrator):
    """Accepts every spec, reports it running at `10.9.0.<n>:<port>`; remembers the specs."""

    kind: ClassVar[str] = "recording"
    capabilities: ClassVar[Capabilities] = Capabilities(
        services_on_other_hosts=True, address_after_start=True, places_on_nodes=True,
        reports_clusters=True,
    )  # fmt: skip

    def __init__(self) -> None:
        self.specs: dict[str, ServiceSpec] = {}
        self.failed: set[str] = set()

    def deploy(self, spec: ServiceSpec) -> str:
        service_id = f"s{len(self.specs)}"
        self.specs[service_id] = spec
        return service_id

    def status(self, service_id: str) -> ServiceState:
        spec = self.specs[service_id]
        port = spec.ports[0].container_port if spec.ports else 1
        return ServiceState(
            service_id=service_id, name=spec.name, project_id=spec.project_id, role=spec.role,
            status=ServiceStatus.FAILED if service_id in self.failed else ServiceStatus.RUNNING,
            exit_code=1 if service_id in self.failed else None,
            addresses=[f"10.9.0.{len(spec.name)}:{port}"],
            cluster=spec.placement.cluster, node=spec.placement.node,
        )  # fmt: skip

    def logs(self, service_id: str, tail: int | None = None) -> list[str]:
        return []

    def undeploy(self, service_id: str, timeout: float = 10.0) -> None:
        pass

    def list_services(self, project_id: str | None = None) -> list[ServiceState]:
        return [self.status(s) for s in self.specs]

    def clusters(self) -> list[ClusterInfo]:
        return [ClusterInfo(cluster_id="c1", name="edgeA")]  # placement must not ask

    def nodes(self) -> list[NodeInfo]:
        return []

    def health(self) -> OrchestratorHealth:
        return OrchestratorHealth(ok=True, message="ok")

    def close(self) -> None:
        pass

    def of_role(self, role: str) -> list[ServiceSpec]:
        return [spec for spec in self.specs.values() if spec.role == role]


@dataclass
class StandInWatch:
    """Services start at once; training succeeds at once."""

    orchestrator: Orchestrator
    followed: list[list[str]] = field(default_factory=list)

    def wait_started(self, service_id: str, what: str) -> ServiceState:
        return self.orchestrator.status(service_id)

    def follow(self, aggregator: str, learners: list[str], *_: Any, **__: Any) -> dict[str, Any]:
        self.followed.append(learners)
        return {"best_round": 1, "metrics": {}}


@pytest.fixture
def orchestrator() -> RecordingOrchestrator:
    return RecordingOrchestrator()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    yield made
    made.close()


def body(**training: Any) -> ProjectCreate:
    return ProjectCreate.model_validate({
        "ml_repo_url": "https://git.example.org/me/repo.git", "ml_model_flavor": "sklearn",
        "supported_platforms": ["linux/amd64", "linux/arm64"],
        "training_configuration": {"data_tags": ["digits"], **training},
    })  # fmt: skip


def context_of(
    orchestrator: Orchestrator, tmp_path: Path, nodes: Callable[[], list[RegisteredNode]]
) -> RunnerContext:
    stack = EmbeddedStack(orchestrator=orchestrator, data_dir=tmp_path, mlflow_port=free_port(),
                          data_server_port=11027, nodes=0)  # fmt: skip
    return RunnerContext(
        orchestrator=orchestrator, stack=stack, repo_policy=RepoPolicy(),
        builder=EnvironmentBuilder(tmp_path / "env", runtime_python=Path(sys.executable),
                                   pip_timeout=1.0),
        work_dir=tmp_path / "projects", callback_base_url="http://10.0.0.1:5072",
        public_tracking_url=PUBLIC_MLFLOW, nodes=nodes,
    )  # fmt: skip


def training_of(context: RunnerContext, database: Database, project: ProjectCreate) -> tuple[
    FederatedTraining, ProjectStore
]:  # fmt: skip
    with database.session() as session:
        row = Project(customer_id="Admin", config={}, repo_url="https://r", state="building")
        session.add(row)
        session.flush()
        store = ProjectStore(database, row.id)
    watch: Any = StandInWatch(context.orchestrator)
    deployer = ServiceDeployer(
        context=context, store=store, body=project, repo_url="https://r", callback_env={},
        watch=watch, check_cancelled=lambda: None,
    )  # fmt: skip
    training = FederatedTraining(context=context, store=store, body=project, deployer=deployer,
                                 watch=watch)  # fmt: skip
    return training, store


def events(database: Database, store: ProjectStore, kind: str) -> list[ProjectEvent]:
    with database.session() as session:
        rows = session.query(ProjectEvent).filter_by(project_id=store.project_id, type=kind)
        session.expunge_all()
        return list(rows)


RUNTIME = ServiceRuntime(learner_image="reg/flops/l:1", aggregator_image="reg/flops/a:1")
NODES = [
    registered_node("w1", cluster="edgeA", address="10.0.0.11"),
    registered_node("w2", cluster="edgeB", address="10.0.0.12", platform="linux/arm64"),
    registered_node("w3", cluster="edgeA", address="10.0.0.13"),
    registered_node("w4", cluster="edgeB", tags={"Admin:cifar": 1}),
]


def argument(spec: ServiceSpec, option: str) -> str:
    return spec.command[spec.command.index(option) + 1]


def test_each_learner_runs_pinned_to_its_node_and_reads_its_data_server(
    orchestrator: RecordingOrchestrator, tmp_path: Path, database: Database
) -> None:
    # Prepare
    training, store = training_of(context_of(orchestrator, tmp_path, lambda: NODES), database,
                                  body())  # fmt: skip

    # Execute
    training.classic(RUNTIME)

    # Assert
    learners = orchestrator.of_role("learner")
    assert [s.placement for s in learners] == [
        Placement(cluster="edgeA", node="w1"), Placement(cluster="edgeB", node="w2"),
        Placement(cluster="edgeA", node="w3"),
    ]  # fmt: skip
    assert [s.platforms for s in learners] == [["linux/amd64"], ["linux/arm64"], ["linux/amd64"]]
    assert [argument(s, "--data-server") for s in learners] == [
        "grpc://10.0.0.11:11027", "grpc://10.0.0.12:11027", "grpc://10.0.0.13:11027",
    ]  # fmt: skip
    [aggregator] = orchestrator.of_role("aggregator")
    assert argument(aggregator, "--mlflow-uri") == PUBLIC_MLFLOW
    assert all(argument(s, "--aggregator").startswith("10.9.0.") for s in learners)
    [placed] = events(database, store, "learners_placed")
    assert placed.data == {"learners": {"learner0": "w1", "learner1": "w2", "learner2": "w3"}}


def test_hierarchical_training_groups_learners_by_their_nodes_clusters(
    orchestrator: RecordingOrchestrator, tmp_path: Path, database: Database
) -> None:
    # Prepare
    training, _ = training_of(context_of(orchestrator, tmp_path, lambda: NODES), database,
                              body(mode="hierarchical", min_available_clients=2))  # fmt: skip

    # Execute
    training.hierarchical(RUNTIME)

    # Assert: edgeA (w1, w3) and edgeB (w2), each with its aggregator pinned there
    aggregators = orchestrator.of_role("aggregator")
    clusters = [(s.placement.cluster, argument(s, "--min-available-clients"))
                for s in aggregators]  # fmt: skip
    assert clusters == [(None, "2"), ("edgeA", "2"), ("edgeB", "1")]
    address_of = {s.placement.cluster: f"10.9.0.{len(s.name)}" for s in aggregators[1:]}
    learners = orchestrator.of_role("learner")
    assert [(s.placement.node, argument(s, "--aggregator").split(":")[0]) for s in learners] == [
        ("w1", address_of["edgeA"]), ("w3", address_of["edgeA"]), ("w2", address_of["edgeB"]),
    ]  # fmt: skip


def test_a_project_whose_tags_no_node_holds_fails_before_anything_is_deployed(
    orchestrator: RecordingOrchestrator, tmp_path: Path, database: Database
) -> None:
    # Prepare
    context = context_of(orchestrator, tmp_path, lambda: [registered_node("w4", tags={})])
    training, store = training_of(context, database, body())
    runner = ProjectRunner(context=context, store=store, body=body(), repo_url="https://r",
                           callback_token="t")  # fmt: skip

    # Execute
    with pytest.raises(ProjectFailure, match="no registered node holds data"):
        training.classic(RUNTIME)
    runner.run()  # from the start: fails before the repo is even checked out

    # Assert
    assert orchestrator.specs == {}
    with database.session() as session:
        project = session.get(Project, store.project_id)
        assert project is not None and project.state == "failed"
        assert project.message.startswith("cannot place the learners: no registered node holds "
                                          "data for data_tags digits")  # fmt: skip


def test_learners_that_fail_are_named_with_their_nodes(
    orchestrator: RecordingOrchestrator, tmp_path: Path, database: Database
) -> None:
    # Prepare: an aggregator and two learners on w1 and w2, both of which fail
    _, store = training_of(context_of(orchestrator, tmp_path, lambda: NODES), database, body())
    aggregator = orchestrator.deploy(ServiceSpec(name="agg", project_id="p", role="aggregator"))
    learners = [
        orchestrator.deploy(ServiceSpec(name=f"l{i}", project_id="p", role="learner",
                                        placement=Placement(cluster="edgeA", node=node)))
        for i, node in enumerate(["w1", "w2"])
    ]  # fmt: skip
    orchestrator.failed.update(learners)
    watch = TrainingWatch(orchestrator=orchestrator, store=store, events=queue.Queue(),
                          check_cancelled=lambda: None)  # fmt: skip
    group = LearnerGroup("aggregator", learners, 2, 2)

    # Execute
    with pytest.raises(ProjectFailure) as failure:
        watch.follow(aggregator, learners, groups=[group])

    # Assert
    assert str(failure.value).startswith(
        "training failed: all 2 learners exited before training ended (on nodes w1, w2)"
    )
    assert [e.message for e in events(database, store, "learner_failed")] == [
        "l0 on node w1 ended with exit code 1", "l1 on node w2 ended with exit code 1",
    ]  # fmt: skip
