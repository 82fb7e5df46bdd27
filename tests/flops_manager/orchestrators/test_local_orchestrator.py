"""The `local` backend: the conformance suite, plus reattach, environment and process checks."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flops_manager.orchestrators import (
    DeployError,
    LocalOrchestrator,
    Orchestrator,
    OrchestratorUnavailableError,
    Placement,
    PortMapping,
    Resources,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)
from flops_manager.orchestrators.local_process import PASSTHROUGH_VARIABLES
from flops_manager.orchestrators.local_record import ServiceRecord, save_record
from tests.conftest import eventually

from .conformance import WAIT, OrchestratorConformance, terminal, wait_for, wait_for_line

REPO_ROOT = Path(__file__).resolve().parents[3]
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"
FAST: dict[str, Any] = {"restart_backoff": 0.05, "restart_backoff_max": 0.2, "poll_interval": 0.02}

MakeLocal = Callable[..., LocalOrchestrator]


def live(pid: int) -> bool:
    """Whether `pid` is a process that still runs code (not gone, not a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


def assert_group_gone(pgid: int, pids: list[int]) -> None:
    """No process of the group runs; once init has reaped the zombies, `killpg` finds none."""
    assert not any(live(pid) for pid in [pgid, *pids])
    eventually(lambda: _group_gone(pgid), f"process group {pgid} gone", WAIT, interval=0.05)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def make_local(tmp_path: Path) -> Iterator[MakeLocal]:
    """Build `LocalOrchestrator`s on `tmp_path/state` (by default); all are closed after."""
    made: list[LocalOrchestrator] = []

    def make(**settings: Any) -> LocalOrchestrator:
        orchestrator = LocalOrchestrator(**{"state_dir": tmp_path / "state", **FAST, **settings})
        made.append(orchestrator)
        return orchestrator

    yield make
    for orchestrator in made:
        orchestrator.close()


@pytest.fixture
def kill_groups() -> Iterator[list[int]]:
    """Process groups a test started outside any orchestrator; SIGKILLed after the test."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def python_spec(name: str, code: str, **fields: Any) -> ServiceSpec:
    values: dict[str, Any] = {"project_id": "proj1", "role": "learner"}
    values.update({"environment_path": Path(sys.prefix), "command": ["python", "-c", code]})
    return ServiceSpec(name=name, **{**values, **fields})


def service_env(orchestrator: Orchestrator, spec: ServiceSpec) -> dict[str, str]:
    """Run a `PRINT_ENV` spec to its end and return the environment the service saw."""
    service_id = orchestrator.deploy(spec)
    assert terminal(orchestrator, service_id).status is ServiceStatus.COMPLETED
    env: dict[str, str] = json.loads(orchestrator.logs(service_id)[-1])
    return env


class TestLocalOrchestratorConformance(OrchestratorConformance):
    def make_orchestrator(self, tmp_path: Path) -> Orchestrator:
        return LocalOrchestrator(tmp_path / "state", **FAST)

    def runtime(self) -> dict[str, Any]:
        return {"environment_path": Path(sys.prefix)}

    def assert_processes_gone(self, state: ServiceState, pids: list[int]) -> None:
        assert len(state.pids) == 1  # the group leader, whose pid is the group id
        assert_group_gone(state.pids[0], pids)


def test_new_orchestrator_adopts_a_running_service_and_can_undeploy_it(
    tmp_path: Path, make_local: MakeLocal, kill_groups: list[int]
) -> None:
    # Prepare: a manager deploys a service, then dies without closing its orchestrator.
    state_dir = tmp_path / "state"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from flops_manager.orchestrators import LocalOrchestrator, ServiceSpec\n"
        "orchestrator = LocalOrchestrator(Path(sys.argv[1]))\n"
        "code = 'import time; print(\"up\", flush=True); time.sleep(60)'\n"
        "spec = ServiceSpec(name='survivor', project_id='proj1', role='learner',\n"
        "    environment_path=Path(sys.prefix), command=['python', '-c', code])\n"
        "print(orchestrator.deploy(spec), flush=True)\n"
        "os._exit(0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    manager = subprocess.run(
        [sys.executable, "-c", script, str(state_dir)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    service_id = manager.stdout.strip()
    record = ServiceRecord.model_validate_json(
        (state_dir / service_id / "service.json").read_text()
    )
    assert record.pgid is not None
    kill_groups.append(record.pgid)

    # Execute: a restarted manager opens the same state directory.
    orchestrator = make_local(state_dir=state_dir)
    adopted = orchestrator.status(service_id)
    line = wait_for_line(orchestrator, service_id, "up")
    orchestrator.undeploy(service_id, timeout=5.0)

    # Assert
    assert adopted.status is ServiceStatus.RUNNING
    assert adopted.pids == [record.pid]
    assert "adopted" in adopted.message
    assert line == "up"
    stopped = orchestrator.status(service_id)
    assert stopped.status is ServiceStatus.STOPPED
    assert stopped.exit_code is None
    assert_group_gone(record.pgid, [])


def _record(service_id: str, state_dir: Path, pid: int, start_ticks: int | None) -> None:
    (state_dir / service_id).mkdir(parents=True)
    record = ServiceRecord(
        service_id=service_id, name="old", project_id="proj1", role="learner", one_shot=False,
        cluster="local", node="n", addresses=[], log_path=state_dir / service_id / "service.log",
        deployed_at=datetime.now(UTC), status=ServiceStatus.RUNNING, pid=pid, pgid=pid,
        boot_id=Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        start_ticks=start_ticks,
    )  # fmt: skip
    save_record(record, state_dir)


def test_a_reused_pid_is_not_adopted_nor_signalled(
    tmp_path: Path, make_local: MakeLocal, kill_groups: list[int]
) -> None:
    # Prepare: the record's pid now belongs to another process (other start time).
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    kill_groups.append(stranger.pid)
    _record("old-1", tmp_path / "state", stranger.pid, start_ticks=1)

    orchestrator = make_local()
    state = orchestrator.status("old-1")
    orchestrator.undeploy("old-1", timeout=1.0)

    assert state.status is ServiceStatus.FAILED
    assert state.exit_code is None
    assert "unknown" in state.message
    assert stranger.poll() is None, "an unrelated process was signalled"
    stranger.kill()
    stranger.wait()


def test_a_service_that_ended_while_no_manager_ran_is_failed_with_unknown_exit_code(
    tmp_path: Path, make_local: MakeLocal
) -> None:
    gone = subprocess.Popen(["true"])  # once reaped, its pid names no process
    gone.wait()
    _record("old-2", tmp_path / "state", gone.pid, start_ticks=None)

    state = make_local().status("old-2")

    assert state.status is ServiceStatus.FAILED
    assert state.exit_code is None
    assert "exit code is unknown" in state.message


def test_a_state_dir_is_used_by_one_orchestrator_at_a_time(make_local: MakeLocal) -> None:
    make_local()
    with pytest.raises(OrchestratorUnavailableError):
        make_local()


@pytest.mark.parametrize(("vcpus", "threads"), [(1.5, "2"), (0.25, "1"), (4, "4")])
def test_blas_threads_follow_vcpus(make_local: MakeLocal, vcpus: float, threads: str) -> None:
    spec = python_spec("blas", PRINT_ENV, one_shot=True, resources=Resources(vcpus=vcpus))

    env = service_env(make_local(), spec)

    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"]
    assert env["OMP_NUM_THREADS"] == threads
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"


def test_no_blas_threads_without_vcpus(make_local: MakeLocal) -> None:
    env = service_env(make_local(), python_spec("blas", PRINT_ENV, one_shot=True))

    assert "OMP_NUM_THREADS" not in env


def test_python_commands_run_from_the_environment_path(
    tmp_path: Path, make_local: MakeLocal
) -> None:
    environment = tmp_path / "env"
    venv.create(environment, with_pip=False, symlinks=True)
    code = "import sys; print(sys.prefix)"
    spec = python_spec("envpath", code, one_shot=True, environment_path=environment)
    orchestrator = make_local()

    service_id = orchestrator.deploy(spec)
    terminal(orchestrator, service_id)

    assert Path(orchestrator.logs(service_id)[-1]) == environment


def test_the_manager_environment_does_not_leak_into_services(
    monkeypatch: pytest.MonkeyPatch, make_local: MakeLocal
) -> None:
    monkeypatch.setenv("MANAGER_DB_PASSWORD", "do-not-leak")
    monkeypatch.setenv("FLOPS_MANAGER_ONLY", "1")
    spec = python_spec("minimal", PRINT_ENV, one_shot=True, env={"MINE": "yes"})

    env = service_env(make_local(), spec)

    assert "MANAGER_DB_PASSWORD" not in env
    assert "FLOPS_MANAGER_ONLY" not in env
    assert env["MINE"] == "yes"
    assert env["PATH"].startswith(f"{sys.prefix}/bin")
    defaults = {"FLWR_TELEMETRY_ENABLED", "PYTHONUNBUFFERED", "VIRTUAL_ENV", "MINE", "LC_CTYPE"}
    assert set(env) <= set(PASSTHROUGH_VARIABLES) | defaults


@pytest.mark.parametrize("enforce", [True, False])
def test_memory_limit_only_when_enforced(make_local: MakeLocal, enforce: bool) -> None:
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    spec = python_spec("memory", code, one_shot=True, resources=Resources(memory_mb=512))
    orchestrator = make_local(enforce_memory_limit=enforce)

    service_id = orchestrator.deploy(spec)
    terminal(orchestrator, service_id)

    expected = 512 * 2**20 if enforce else resource.getrlimit(resource.RLIMIT_AS)[0]
    assert orchestrator.logs(service_id) == [str(expected)]


@pytest.mark.parametrize(
    "fields",
    [
        {"command": ["no-such-program-for-flops"]},
        {"command": []},
        {"environment_path": Path("/nonexistent/env")},
        {"ports": [PortMapping(container_port=8080, host_port=9090)]},
        {"placement": Placement(cluster="elsewhere")},
        {"placement": Placement(node="elsewhere")},
        {"platforms": ["linux/s390x"]},
        {"working_dir": Path("/nonexistent/dir")},
    ],
)
def test_undeployable_specs_raise_deploy_error(
    tmp_path: Path, make_local: MakeLocal, fields: dict[str, Any]
) -> None:
    spec = python_spec("bad", "pass", **fields)
    orchestrator = make_local()

    with pytest.raises(DeployError):
        orchestrator.deploy(spec)

    assert orchestrator.list_services() == []
    assert [p.name for p in (tmp_path / "state").iterdir() if p.is_dir()] == []


def test_placement_uses_the_configured_clusters(make_local: MakeLocal) -> None:
    orchestrator = make_local(clusters={"c1": ["n1", "n2"], "c2": ["n3"]})

    placed = orchestrator.deploy(python_spec("a", "pass", placement=Placement(node="n3")))
    default = orchestrator.deploy(python_spec("b", "pass"))

    assert (orchestrator.status(placed).cluster, orchestrator.status(placed).node) == ("c2", "n3")
    assert (orchestrator.status(default).cluster, orchestrator.status(default).node) == ("c1", "n1")
    assert [node.name for node in orchestrator.nodes()] == ["n1", "n2", "n3"]
    assert [cluster.name for cluster in orchestrator.clusters()] == ["c1", "c2"]


def test_logs_tail(make_local: MakeLocal) -> None:
    orchestrator = make_local()
    service_id = orchestrator.deploy(python_spec("lines", "for i in range(5): print(i)"))
    terminal(orchestrator, service_id)

    assert orchestrator.logs(service_id) == ["0", "1", "2", "3", "4"]
    assert orchestrator.logs(service_id, tail=2) == ["3", "4"]
    assert orchestrator.logs(service_id, tail=0) == []
    assert orchestrator.logs(service_id, tail=50) == ["0", "1", "2", "3", "4"]


def test_sigterm_ignored_is_killed_after_the_timeout(make_local: MakeLocal) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    orchestrator = make_local()
    service_id = orchestrator.deploy(python_spec("stubborn", code))
    pgid = orchestrator.status(service_id).pids[0]
    wait_for_line(orchestrator, service_id, "ready")

    orchestrator.undeploy(service_id, timeout=0.2)

    state = orchestrator.status(service_id)
    assert state.status is ServiceStatus.STOPPED
    assert "SIGKILL" in state.message
    assert state.exit_code == 128 + signal.SIGKILL
    assert not live(pgid)


def test_close_undeploys_every_service_and_keeps_no_secret_on_disk(
    tmp_path: Path, make_local: MakeLocal
) -> None:
    orchestrator = make_local()
    env = {"API_TOKEN": "s3cr3t-value"}
    service_ids = [
        orchestrator.deploy(python_spec(f"s{i}", "import time; time.sleep(60)", env=env))
        for i in range(3)
    ]
    pgids = [orchestrator.status(service_id).pids[0] for service_id in service_ids]

    orchestrator.close()

    assert not any(live(pgid) for pgid in pgids)
    assert {orchestrator.status(i).status for i in service_ids} == {ServiceStatus.STOPPED}
    assert not orchestrator.health().ok
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert b"s3cr3t-value" not in path.read_bytes()


def test_a_restarting_service_can_be_undeployed_between_runs(make_local: MakeLocal) -> None:
    orchestrator = make_local(restart_backoff=30.0, restart_backoff_max=30.0)
    spec = python_spec("flaky", "raise SystemExit(1)", restart={"policy": "on_failure"})
    service_id = orchestrator.deploy(spec)
    wait_for(lambda: orchestrator.status(service_id), lambda s: s.status is ServiceStatus.PENDING)

    orchestrator.undeploy(service_id, timeout=1.0)

    assert orchestrator.status(service_id).status is ServiceStatus.STOPPED
