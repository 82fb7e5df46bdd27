"""The conformance suite every orchestrator backend passes; subclass it once per backend.

As Flower's `linkstate_test.py`: `OrchestratorConformance` holds the tests, a backend's
`Test...` class subclasses it and says how to build the backend and how to run Python in it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flops_manager.orchestrators import (
    Capabilities,
    Orchestrator,
    PortMapping,
    RestartPolicy,
    ServiceNotFoundError,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)
from tests.wait import eventually

WAIT = 10.0  # seconds any service may take to reach a status

SPAWN_GRANDCHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("grandchild", child.pid, flush=True)
time.sleep(60)
"""


def wait_for(
    check: Callable[[], ServiceState], until: Callable[[ServiceState], bool]
) -> ServiceState:
    """Poll `check()` until `until(state)` holds; fail the test after `WAIT` seconds."""
    return eventually(
        check, "the service to reach the expected state", WAIT, until=until, interval=0.02
    )


def wait_for_line(orchestrator: Orchestrator, service_id: str, prefix: str) -> str:
    """Return the first log line of the service that starts with `prefix`, waiting for it."""
    lines = eventually(
        lambda: [line for line in orchestrator.logs(service_id) if line.startswith(prefix)],
        f"a log line starting with {prefix!r}",
        WAIT,
        interval=0.02,
    )
    return lines[0]


def terminal(orchestrator: Orchestrator, service_id: str) -> ServiceState:
    """Wait until the service reaches a terminal status and return that state."""
    return wait_for(lambda: orchestrator.status(service_id), lambda s: s.status.terminal)


class OrchestratorConformance:
    """Behaviour every `Orchestrator` backend shows.

    Subclasses implement `make_orchestrator()` and `runtime()`; backends whose services are
    host processes also implement `assert_processes_gone()`.
    """

    def make_orchestrator(self, tmp_path: Path) -> Orchestrator:
        """Return a fresh orchestrator of the backend under test (closed by the fixture)."""
        raise NotImplementedError

    def runtime(self) -> dict[str, Any]:
        """Return the spec fields that let `python -c ...` run (an image or an environment)."""
        raise NotImplementedError

    def assert_processes_gone(self, state: ServiceState, pids: list[int]) -> None:
        """Assert that no process of an undeployed service (nor `pids` it spawned) is left."""

    @pytest.fixture
    def orchestrator(self, tmp_path: Path) -> Iterator[Orchestrator]:
        orchestrator = self.make_orchestrator(tmp_path)
        yield orchestrator
        orchestrator.close()

    def spec(self, name: str, code: str, **fields: Any) -> ServiceSpec:
        """A service running `python -c code` in project `proj1` unless `fields` say otherwise."""
        values: dict[str, Any] = {"project_id": "proj1", "role": "learner", **self.runtime()}
        values.update(fields)
        return ServiceSpec(name=name, command=["python", "-c", code], **values)

    def test_one_shot_completes_with_its_output_in_the_logs(
        self, orchestrator: Orchestrator
    ) -> None:
        spec = self.spec("hello", "print('hello'); print('from the service')", one_shot=True)

        service_id = orchestrator.deploy(spec)
        state = terminal(orchestrator, service_id)

        assert state.status is ServiceStatus.COMPLETED
        assert state.exit_code == 0
        assert (state.name, state.project_id, state.role) == ("hello", "proj1", "learner")
        assert state.finished_at is not None
        assert orchestrator.logs(service_id) == ["hello", "from the service"]
        assert orchestrator.logs(service_id, tail=1) == ["from the service"]

    def test_failing_one_shot_fails_with_its_exit_code(self, orchestrator: Orchestrator) -> None:
        spec = self.spec("broken", "import sys; print('oops'); sys.exit(3)", one_shot=True)

        service_id = orchestrator.deploy(spec)
        state = terminal(orchestrator, service_id)

        assert state.status is ServiceStatus.FAILED
        assert state.exit_code == 3
        assert "3" in state.message
        assert orchestrator.logs(service_id) == ["oops"]

    def test_long_running_service_runs_until_undeployed(self, orchestrator: Orchestrator) -> None:
        service_id = orchestrator.deploy(self.spec("sleeper", SPAWN_GRANDCHILD))
        running = wait_for(
            lambda: orchestrator.status(service_id), lambda s: s.status is ServiceStatus.RUNNING
        )
        grandchild = int(wait_for_line(orchestrator, service_id, "grandchild").split()[1])

        orchestrator.undeploy(service_id, timeout=5.0)

        state = orchestrator.status(service_id)
        assert state.status is ServiceStatus.STOPPED
        assert state.finished_at is not None
        self.assert_processes_gone(running, [grandchild])

    def test_undeploy_is_idempotent(self, orchestrator: Orchestrator) -> None:
        service_id = orchestrator.deploy(self.spec("sleeper", "import time; time.sleep(60)"))

        orchestrator.undeploy(service_id, timeout=5.0)
        orchestrator.undeploy(service_id, timeout=5.0)
        orchestrator.undeploy("no-such-service")

        assert orchestrator.status(service_id).status is ServiceStatus.STOPPED

    def test_undeploy_keeps_the_status_of_an_ended_service(
        self, orchestrator: Orchestrator
    ) -> None:
        service_id = orchestrator.deploy(self.spec("done", "pass", one_shot=True))
        terminal(orchestrator, service_id)

        orchestrator.undeploy(service_id)

        assert orchestrator.status(service_id).status is ServiceStatus.COMPLETED

    def test_unknown_service_id_raises(self, orchestrator: Orchestrator) -> None:
        with pytest.raises(ServiceNotFoundError):
            orchestrator.status("no-such-service")
        with pytest.raises(ServiceNotFoundError):
            orchestrator.logs("no-such-service")

    def test_restart_on_failure_restarts_up_to_the_maximum_then_fails(
        self, orchestrator: Orchestrator
    ) -> None:
        restart = RestartPolicy(policy="on_failure", max_restarts=2)
        spec = self.spec("flaky", "print('attempt'); raise SystemExit(1)", restart=restart)

        service_id = orchestrator.deploy(spec)
        state = terminal(orchestrator, service_id)

        assert state.status is ServiceStatus.FAILED
        assert state.exit_code == 1
        assert state.restarts == 2
        assert "2 restarts" in state.message
        assert orchestrator.logs(service_id).count("attempt") == 3

    def test_environment_reaches_the_service_and_secrets_stay_out_of_logs(
        self,
        orchestrator: Orchestrator,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        code = "import os; print(os.environ['GREETING'], len(os.environ['API_TOKEN']))"
        env = {"GREETING": "hello", "API_TOKEN": "s3cr3t-value"}
        spec = self.spec("envcheck", code, env=env, one_shot=True)
        monkeypatch.setattr(logging.getLogger("flops"), "propagate", True)
        caplog.set_level(logging.DEBUG, logger="flops")

        service_id = orchestrator.deploy(spec)
        state = terminal(orchestrator, service_id)

        assert state.status is ServiceStatus.COMPLETED
        assert orchestrator.logs(service_id) == ["hello 12"]
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("flops.manager")]
        assert ours, "the backend logs what it does"
        assert all("proj1" in message for message in ours), ours
        for text in (repr(spec), str(spec), str(spec.redacted()), caplog.text):
            assert "s3cr3t-value" not in text
        assert "GREETING" in repr(spec)

    def test_list_services_filters_by_project(self, orchestrator: Orchestrator) -> None:
        first = orchestrator.deploy(self.spec("a", "pass", one_shot=True, project_id="p1"))
        second = orchestrator.deploy(self.spec("b", "pass", one_shot=True, project_id="p1"))
        other = orchestrator.deploy(self.spec("c", "pass", one_shot=True, project_id="p2"))

        in_p1 = orchestrator.list_services("p1")
        everything = orchestrator.list_services()

        assert {s.service_id for s in in_p1} == {first, second}
        assert {s.service_id for s in everything} >= {first, second, other}
        assert orchestrator.list_services("nobody") == []

    def test_address_names_the_published_port(self, orchestrator: Orchestrator) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        spec = self.spec(
            "server", "import time; time.sleep(60)", ports=[PortMapping(container_port=port)]
        )

        service_id = orchestrator.deploy(spec)
        state = orchestrator.status(service_id)

        assert state.address is not None
        assert state.address.endswith(f":{port}")
        if not orchestrator.capabilities.address_after_start:
            # The lifecycle gives other services this address without asking for it.
            assert state.address == f"127.0.0.1:{port}"

    @pytest.mark.parametrize("name", ["", "has-dash", "under_score", "a" * 31, "sp ace", "ümlaut"])
    def test_invalid_service_name_is_rejected(self, name: str) -> None:
        with pytest.raises(ValidationError):
            ServiceSpec(name=name, project_id="p1", role="learner", command=["true"])

    def test_clusters_nodes_and_health_are_reported(self, orchestrator: Orchestrator) -> None:
        clusters = orchestrator.clusters()
        nodes = orchestrator.nodes()
        health = orchestrator.health()

        assert clusters
        assert nodes
        assert {node.cluster for node in nodes} <= {cluster.name for cluster in clusters}
        assert health.ok, health.message

    def test_capabilities_are_declared_and_consistent(self, orchestrator: Orchestrator) -> None:
        capabilities = orchestrator.capabilities

        assert isinstance(capabilities, Capabilities)
        assert orchestrator.kind
        # Clusters come from the backend itself or are simulated, never both.
        assert not (capabilities.reports_clusters and capabilities.simulates_clusters)

    def test_a_deployed_service_is_placed_unless_it_schedules_later(
        self, orchestrator: Orchestrator
    ) -> None:
        if orchestrator.capabilities.schedules_after_deploy:
            pytest.skip("this backend places services after deploy() returns")

        service_id = orchestrator.deploy(self.spec("placed", "import time; time.sleep(60)"))
        state = orchestrator.status(service_id)
        orchestrator.undeploy(service_id, timeout=5.0)

        assert state.status in (ServiceStatus.STARTING, ServiceStatus.RUNNING), state
        assert state.node is not None
