"""A restarted manager's recovery: what a killed manager left running is found and stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_core.repos import RepoPolicy
from flops_manager.db import Database, Project
from flops_manager.environments import EnvironmentBuilder
from flops_manager.lifecycle.embedded_stack import EmbeddedStack
from flops_manager.lifecycle.lifecycle import ProjectLifecycle
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.lifecycle.runner_context import RunnerContext
from flops_manager.orchestrators import LocalOrchestrator, ServiceStatus
from tests.flops_manager.api.conftest import alive, kill_leftover_services

ROOT = Path(__file__).resolve().parents[3]

# A manager that deploys services, records only some of them, and dies without cleaning up.
KILLED_MANAGER = """
import os, sys
from pathlib import Path
from flops_manager.orchestrators import LocalOrchestrator, ServiceSpec
orchestrator = LocalOrchestrator(Path(sys.argv[1]))
for name, project, role in [("agg", sys.argv[2], "aggregator"), ("inf", sys.argv[3], "inference")]:
    spec = ServiceSpec(name=name, project_id=project, role=role,
                       command=[sys.executable, "-c", "import time; time.sleep(120)"])
    print(orchestrator.deploy(spec), flush=True)
os._exit(0)
"""


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    yield made
    made.close()


def lifecycle_on(
    database: Database, orchestrator: LocalOrchestrator, data: Path
) -> ProjectLifecycle:
    stack = EmbeddedStack(
        orchestrator=orchestrator, data_dir=data, mlflow_port=1, data_server_port=2, nodes=1
    )
    context = RunnerContext(
        orchestrator=orchestrator,
        builder=EnvironmentBuilder(data / "environments", runtime_python=Path(sys.executable),
                                   pip_timeout=60.0),
        stack=stack, repo_policy=RepoPolicy(), work_dir=data / "projects",
        callback_base_url="http://127.0.0.1:1",
    )  # fmt: skip
    return ProjectLifecycle(database=database, context=context)


def test_recovery_stops_a_service_no_project_recorded_and_keeps_inference(
    tmp_path: Path, database: Database
) -> None:
    # Prepare: a training project whose aggregator was deployed but not yet recorded, and a
    # completed project whose inference service is recorded (it outlives the manager)
    with database.session() as session:
        training = Project(customer_id="c", config={}, repo_url="file:///r", state="training")
        done = Project(customer_id="c", config={}, repo_url="file:///r", state="completed")
        session.add_all([training, done])
        session.flush()
        training_id, done_id = training.id, done.id
    state_dir = tmp_path / "services"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MANAGER, str(state_dir), training_id, done_id],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    aggregator, inference = killed.stdout.split()
    ProjectStore(database, done_id).add_service(inference, "inference", "local")
    pgids = {
        service: json.loads((state_dir / service / "service.json").read_text())["pgid"]
        for service in (aggregator, inference)
    }
    orchestrator = LocalOrchestrator(state_dir)
    try:
        # Execute
        lifecycle_on(database, orchestrator, tmp_path).recover()

        # Assert
        assert orchestrator.status(aggregator).status is ServiceStatus.STOPPED
        assert not alive(pgids[aggregator])
        assert orchestrator.status(inference).status is ServiceStatus.RUNNING
        assert ProjectStore(database, training_id).state() == "failed"
    finally:
        orchestrator.close()
        kill_leftover_services(state_dir)
