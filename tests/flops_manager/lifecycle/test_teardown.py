"""Undeploying a project's live services: kept roles stay, one failure does not stop the rest."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_manager.db import Database, Project
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.teardown import undeploy_live
from flops_manager.orchestrators import (
    LocalOrchestrator,
    OrchestratorUnavailableError,
    ServiceSpec,
    ServiceStatus,
)

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


class StubbornOrchestrator(LocalOrchestrator):
    """A local orchestrator whose processes of one service survive every stop."""

    stubborn: frozenset[str] = frozenset()

    def undeploy(self, service_id: str, timeout: float = 10.0) -> None:
        if service_id in self.stubborn:
            raise OrchestratorUnavailableError(
                f"processes of ['{service_id}'] survived SIGKILL; undeploy them again"
            )
        super().undeploy(service_id, timeout)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ProjectStore]:
    database = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    with database.session() as session:
        project = Project(customer_id="alice", config={}, repo_url="file:///repo")
        session.add(project)
        session.flush()
        project_id = project.id
    yield ProjectStore(database, project_id)
    database.close()


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[StubbornOrchestrator]:
    made = StubbornOrchestrator(tmp_path / "services")
    yield made
    for state in made.list_services():
        LocalOrchestrator.undeploy(made, state.service_id, timeout=5.0)
    made.close()


def deploy(orchestrator: LocalOrchestrator, store: ProjectStore, role: str) -> str:
    spec = ServiceSpec(name=role, project_id=store.project_id, role=role, command=SLEEP)
    service_id = orchestrator.deploy(spec)
    store.add_service(service_id, role, "local")
    return service_id


def test_kept_roles_stay_and_the_others_stop(
    store: ProjectStore, orchestrator: StubbornOrchestrator
) -> None:
    # Prepare
    learner = deploy(orchestrator, store, "learner")
    aggregator = deploy(orchestrator, store, "aggregator")
    inference = deploy(orchestrator, store, "inference")

    # Execute
    done = undeploy_live(store, orchestrator, keep={"inference"})

    # Assert
    assert sorted(done.stopped) == sorted([(learner, "learner"), (aggregator, "aggregator")])
    assert done.failed == []
    assert store.live_services() == [(inference, "inference")]
    assert orchestrator.status(learner).status.terminal
    assert orchestrator.status(inference).status is not ServiceStatus.STOPPED


def test_a_service_that_cannot_be_stopped_stays_live_and_the_rest_stop(
    store: ProjectStore, orchestrator: StubbornOrchestrator
) -> None:
    # Prepare
    stubborn = deploy(orchestrator, store, "aggregator")
    learner = deploy(orchestrator, store, "learner")
    orchestrator.stubborn = frozenset({stubborn})

    # Execute
    done = undeploy_live(store, orchestrator)

    # Assert
    assert done.stopped == [(learner, "learner")]
    assert [(sid, role) for sid, role, _ in done.failed] == [(stubborn, "aggregator")]
    assert "survived SIGKILL" in str(done.failed[0][2])
    assert store.live_services() == [(stubborn, "aggregator")]  # a later call tries again
    orchestrator.stubborn = frozenset()
    assert undeploy_live(store, orchestrator).stopped == [(stubborn, "aggregator")]
    assert store.live_services() == []
