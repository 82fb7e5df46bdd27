"""The `docker` backend: the conformance suite on a real dockerd, plus Docker-specific checks.

Tests marked `container` need dockerd and the registry of `scripts/container-env.sh`; every
one runs its orchestrator under its own `instance` label, and removes the containers (and
networks) with that label afterwards. The others need no Docker daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from flops_manager.orchestrators import (
    DeployError,
    DockerOrchestrator,
    Orchestrator,
    OrchestratorUnavailableError,
    Placement,
    PortMapping,
    Resources,
    RestartPolicy,
    ServiceNotFoundError,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
    create_orchestrator,
)
from flops_manager.orchestrators.docker_image import choose_platform
from flops_manager.orchestrators.docker_spec import DockerLabels
from flops_manager.orchestrators.docker_state import container_state
from tests.conftest import eventually

from .conformance import OrchestratorConformance, terminal, wait_for_line

BASE_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
REGISTRY = "127.0.0.1:5050"
IMAGE = f"{REGISTRY}/flops/debian-python:bookworm-amd64"
MULTI_PLATFORM_IMAGE = f"{REGISTRY}/flops/debian-python:bookworm"  # amd64 + arm64
SLEEP = "import time; print('up', flush=True); time.sleep(60)"
EMULATED_WAIT = 120.0  # seconds an emulated arm64 Python may take to start and finish

container = pytest.mark.container


@pytest.fixture
def instance() -> Iterator[str]:
    """A fresh `instance` label value; its containers and networks are removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = docker.APIClient(base_url=BASE_URL)
    try:
        label = f"io.flops.managed-by={name}"
        for entry in client.containers(all=True, filters={"label": label}):
            client.remove_container(entry["Id"], force=True, v=True)
        for network in client.networks(filters={"label": label}):
            client.remove_network(network["Id"])
    finally:
        client.close()


@pytest.fixture
def make_docker(instance: str) -> Iterator[Any]:
    """Build `DockerOrchestrator`s of the test's instance; all are closed after the test."""
    made: list[DockerOrchestrator] = []

    def make(**settings: Any) -> DockerOrchestrator:
        settings = {"base_url": BASE_URL, "instance": instance, **settings}
        orchestrator = DockerOrchestrator(**settings)
        made.append(orchestrator)
        return orchestrator

    yield make
    for orchestrator in made:
        orchestrator.close()


def inspect(service_id: str, instance: str) -> dict[str, Any]:
    """`docker inspect` of the service's container, looked up by label as a user would."""
    client = docker.APIClient(base_url=BASE_URL)
    try:
        label = [f"io.flops.service-id={service_id}", f"io.flops.managed-by={instance}"]
        (entry,) = client.containers(all=True, filters={"label": label})
        attrs: dict[str, Any] = client.inspect_container(entry["Id"])
        return attrs
    finally:
        client.close()


def spec(name: str, code: str, **fields: Any) -> ServiceSpec:
    values: dict[str, Any] = {"project_id": "proj1", "role": "learner", "image": IMAGE}
    return ServiceSpec(name=name, command=["python", "-c", code], **{**values, **fields})


def wait_terminal(orchestrator: Orchestrator, service_id: str, seconds: float) -> ServiceState:
    return eventually(
        lambda: orchestrator.status(service_id), f"service {service_id} ended", seconds,
        until=lambda state: state.status.terminal, interval=0.1,
    )  # fmt: skip


@container
class TestDockerOrchestrator(OrchestratorConformance):
    @pytest.fixture(autouse=True)
    def _instance(self, instance: str) -> None:
        self.instance = instance

    def make_orchestrator(self, tmp_path: Path) -> Orchestrator:
        return DockerOrchestrator(base_url=BASE_URL, instance=self.instance)

    def runtime(self) -> dict[str, Any]:
        return {"image": IMAGE}

    def assert_processes_gone(self, state: ServiceState, pids: list[int]) -> None:
        # `pids` are ids in the container's pid namespace; once the container's init (the
        # host process `state.pids[0]`) is gone, the kernel has killed the whole namespace.
        attrs = inspect(state.service_id, self.instance)
        assert not attrs["State"]["Running"]
        assert attrs["State"]["Pid"] == 0
        assert len(state.pids) == 1
        assert not Path(f"/proc/{state.pids[0]}").exists()


@container
def test_memory_and_cpu_limits_reach_the_container(make_docker: Any, instance: str) -> None:
    resources = Resources(memory_mb=256, vcpus=0.5)
    code = f"import os; print(os.environ['OMP_NUM_THREADS'], flush=True); {SLEEP}"
    orchestrator = make_docker()

    service_id = orchestrator.deploy(spec("limited", code, resources=resources))
    line = wait_for_line(orchestrator, service_id, "1")

    host_config = inspect(service_id, instance)["HostConfig"]
    assert host_config["Memory"] == 256 * 2**20
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["RestartPolicy"]["Name"] == "no"
    assert line == "1"
    orchestrator.undeploy(service_id, timeout=1.0)


@container
def test_privileged_services_get_sys_admin_and_named_volumes_persist(
    make_docker: Any, instance: str
) -> None:
    # Prepare: a privileged one-shot that reports its capabilities and writes to a volume
    volume = f"flops-test-{instance}"
    code = (
        "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')][0];"
        "print(int(caps.split()[1], 16) >> 21 & 1);"
        "open('/cache/mark', 'a').write('x'); print(len(open('/cache/mark').read()))"
    )
    orchestrator = make_docker()
    try:
        # Execute: twice, with the same volume
        lines = []
        for run in range(2):
            service_id = orchestrator.deploy(
                spec(f"priv{run}", code, privileged=True, one_shot=True, volumes={volume: "/cache"})
            )
            state = wait_terminal(orchestrator, service_id, 30)
            assert state.status is ServiceStatus.COMPLETED, orchestrator.logs(service_id)
            lines.append(orchestrator.logs(service_id))

        # Assert: CAP_SYS_ADMIN (bit 21) in both, and the second run saw the first one's write
        assert lines == [["1", "1"], ["1", "2"]]
    finally:
        orchestrator.prune()
        client = docker.from_env()
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(volume).remove(force=True)
        client.close()


@container
@pytest.mark.parametrize(
    ("platforms", "machine"),
    [(["linux/arm64"], "aarch64"), (["linux/arm64", "linux/amd64"], "x86_64")],
)
def test_platform_of_the_spec_is_the_platform_that_runs(
    make_docker: Any, platforms: list[str], machine: str
) -> None:
    code = "import platform; print(platform.machine())"
    one_shot = spec("arch", code, image=MULTI_PLATFORM_IMAGE, platforms=platforms, one_shot=True)
    orchestrator = make_docker()

    service_id = orchestrator.deploy(one_shot)
    state = wait_terminal(orchestrator, service_id, EMULATED_WAIT)

    assert state.status is ServiceStatus.COMPLETED, orchestrator.logs(service_id)
    assert orchestrator.logs(service_id) == [machine]


@container
@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"image": f"{REGISTRY}/flops/no-such-image:v1"}, "not found in the registry"),
        ({"image": None}, "spec.image is required"),
        ({"platforms": ["linux/s390x"]}, "has no linux/s390x variant"),
        ({"ports": [PortMapping(container_port=8080, host_port=9090)]}, "cannot be remapped"),
        ({"placement": Placement(cluster="elsewhere")}, "unknown cluster"),
        ({"placement": Placement(node="elsewhere")}, "unknown node"),
    ],
)
def test_undeployable_specs_raise_a_clear_deploy_error(
    make_docker: Any, fields: dict[str, Any], says: str
) -> None:
    orchestrator = make_docker()
    values = {"image": IMAGE, "command": ["python", "-c", "pass"], **fields}

    with pytest.raises(DeployError, match=says) as error:
        orchestrator.deploy(ServiceSpec(name="bad", project_id="proj1", role="learner", **values))

    if fields.get("image"):
        assert fields["image"] in str(error.value)
    assert orchestrator.list_services() == []


@container
@pytest.mark.parametrize("init", [True, False])
def test_a_command_that_does_not_exist_fails_clearly(make_docker: Any, init: bool) -> None:
    bad = spec("nocommand", "pass", one_shot=True)
    bad = bad.model_copy(update={"command": ["no-such-program-for-flops"]})
    orchestrator = make_docker(init=init)

    if not init:  # the daemon itself execs the command: it refuses to start the container
        with pytest.raises(DeployError, match="executable file not found"):
            orchestrator.deploy(bad)
        assert orchestrator.list_services() == []
        return
    service_id = orchestrator.deploy(bad)  # Docker's init starts, then cannot exec
    state = terminal(orchestrator, service_id)

    assert (state.status, state.exit_code) == (ServiceStatus.FAILED, 127)
    assert "command not found" in state.message
    assert "no-such-program-for-flops" in orchestrator.logs(service_id)[-1]


@container
@container
def test_a_tag_moved_in_the_registry_is_pulled_again_not_run_stale(make_docker: Any) -> None:
    # Prepare: tag v1 pulled on this host, then the registry's tag moves to a new image
    client = docker.from_env()
    tag = f"{REGISTRY}/flopstest/moving:{uuid.uuid4().hex[:8]}"
    repository, version = tag.rsplit(":", 1)
    base = client.images.pull(IMAGE)
    try:
        base.tag(repository, version)
        client.images.push(repository, version)
        builder = client.containers.run(IMAGE, ["sh", "-c", "echo v2 > /version"], detach=True)
        builder.wait()
        builder.commit(repository, version)
        builder.remove()
        client.images.push(repository, version)
        base.tag(repository, version)  # the host's tag still names the old image

        # Execute
        orchestrator = make_docker()
        service_id = orchestrator.deploy(
            ServiceSpec(name="moved", project_id="p1", role="learner", image=tag,
                        command=["cat", "/version"], one_shot=True)
        )  # fmt: skip
        state = wait_terminal(orchestrator, service_id, 60)

        # Assert
        assert state.status is ServiceStatus.COMPLETED, state
        assert orchestrator.logs(service_id) == ["v2"]
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(tag, force=True)
        client.close()


@container
def test_a_missing_image_is_not_pulled_when_pulling_is_off(make_docker: Any) -> None:
    orchestrator = make_docker(pull=False)

    with pytest.raises(DeployError, match="pulling is off"):
        orchestrator.deploy(spec("nopull", "pass", image=f"{REGISTRY}/flops/never-pulled:v1"))


def test_an_unreachable_daemon_is_reported_not_raised_at_construction(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-docker.sock"
    orchestrator = DockerOrchestrator(base_url=url)  # must not raise

    health = orchestrator.health()

    assert not health.ok
    assert url in health.message
    assert "not reachable" in health.message
    assert "start dockerd or set FLOPS_DOCKER_HOST" in health.message
    calls = [
        lambda: orchestrator.deploy(spec("a", "pass")),
        lambda: orchestrator.status("some-id"),
        lambda: orchestrator.logs("some-id"),
        lambda: orchestrator.undeploy("some-id"),
        lambda: orchestrator.list_services(),
        lambda: orchestrator.nodes(),
    ]
    for call in calls:
        with pytest.raises(OrchestratorUnavailableError, match="not reachable"):
            call()
    orchestrator.close()
    assert not orchestrator.health().ok


def test_invalid_settings_are_refused_without_a_daemon() -> None:
    with pytest.raises(ValueError, match="network_mode"):
        DockerOrchestrator(network_mode="bridge")
    with pytest.raises(ValueError, match="instance"):
        DockerOrchestrator(instance="has space")
    with pytest.raises(ValueError, match="Docker daemon address"):
        DockerOrchestrator(base_url="ftp://example.org")
    assert isinstance(create_orchestrator("docker", base_url=BASE_URL), DockerOrchestrator)


@container
def test_a_new_orchestrator_finds_the_services_of_the_same_instance(make_docker: Any) -> None:
    # Prepare: a manager deploys a service, then goes away (its containers outlive close()).
    first = make_docker()
    service_id = first.deploy(spec("survivor", SLEEP))
    wait_for_line(first, service_id, "up")
    first.close()

    # Execute: the restarted manager opens an orchestrator of the same instance.
    second = make_docker()
    found = second.status(service_id)
    listed = second.list_services("proj1")
    other = make_docker(instance=f"other-{uuid.uuid4().hex[:8]}")
    second.undeploy(service_id, timeout=1.0)

    # Assert
    assert found.status is ServiceStatus.RUNNING
    assert found.node == second.nodes()[0].name
    assert [state.service_id for state in listed] == [service_id]
    assert second.logs(service_id) == ["up"]
    with pytest.raises(ServiceNotFoundError):
        other.status(service_id)
    assert other.list_services() == []
    assert make_docker().status(service_id).status is ServiceStatus.STOPPED


@container
@pytest.mark.parametrize("max_restarts", [0, 1, 3])
def test_on_failure_restarts_are_counted(
    make_docker: Any, instance: str, max_restarts: int
) -> None:
    restart = RestartPolicy(policy="on_failure", max_restarts=max_restarts)
    orchestrator = make_docker()

    service_id = orchestrator.deploy(spec("flaky", "print('attempt'); exit(2)", restart=restart))
    state = terminal(orchestrator, service_id)

    assert (state.status, state.exit_code) == (ServiceStatus.FAILED, 2)
    assert state.restarts == max_restarts
    assert orchestrator.logs(service_id).count("attempt") == max_restarts + 1
    policy = inspect(service_id, instance)["HostConfig"]["RestartPolicy"]
    assert policy["Name"] == ("on-failure" if max_restarts else "no")


@container
def test_a_service_ignoring_sigterm_is_killed_after_the_timeout(make_docker: Any) -> None:
    code = f"import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); {SLEEP}"
    orchestrator = make_docker()
    service_id = orchestrator.deploy(spec("stubborn", code))
    wait_for_line(orchestrator, service_id, "up")

    started = time.monotonic()
    orchestrator.undeploy(service_id, timeout=1.0)

    state = orchestrator.status(service_id)
    assert time.monotonic() - started < 10.0
    assert state.status is ServiceStatus.STOPPED
    assert state.exit_code == 128 + signal.SIGKILL
    assert "SIGKILL" in state.message


@container
def test_prune_and_retention_remove_ended_containers_only(make_docker: Any) -> None:
    orchestrator = make_docker(retention=None)
    done = orchestrator.deploy(spec("done", "pass", one_shot=True))
    other = orchestrator.deploy(spec("other", "pass", one_shot=True, project_id="proj2"))
    running = orchestrator.deploy(spec("running", SLEEP))
    terminal(orchestrator, done)
    terminal(orchestrator, other)

    removed = orchestrator.prune("proj1")
    # A manager with a retention of 0 s removes every ended container on its next deploy.
    collector = make_docker(retention=0.0)
    later = collector.deploy(spec("later", SLEEP))

    assert removed == [done]
    with pytest.raises(ServiceNotFoundError):
        orchestrator.status(done)
    with pytest.raises(ServiceNotFoundError):
        orchestrator.status(other)
    running_ids = {s.service_id for s in orchestrator.list_services()}
    assert running_ids == {running, later}
    assert orchestrator.status(running).status is ServiceStatus.RUNNING


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@container
def test_a_named_network_publishes_ports_and_resolves_services_by_name(
    make_docker: Any, instance: str
) -> None:
    network = f"flops-{instance}"
    client = docker.APIClient(base_url=BASE_URL)
    client.create_network(network, labels={"io.flops.managed-by": instance})
    client.close()
    orchestrator = make_docker(network_mode=network)
    host_port = _free_port()
    server = spec(
        "server",
        "import http.server as h; h.HTTPServer(('', 8000), h.SimpleHTTPRequestHandler)"
        ".serve_forever()",
        ports=[PortMapping(container_port=8000, host_port=host_port)],
        working_dir=Path("/etc"),
    )

    server_id = orchestrator.deploy(server)
    address = orchestrator.status(server_id).address
    assert address is not None and address.endswith(":8000")
    fetch = (
        "import time, urllib.request\n"
        "for _ in range(100):\n"
        "    try: print(len(urllib.request.urlopen('http://ADDRESS/hostname').read()) > 0); break\n"
        "    except OSError: time.sleep(0.1)\n"
    ).replace("ADDRESS", address)
    client_id = orchestrator.deploy(spec("client", fetch, one_shot=True))
    state = terminal(orchestrator, client_id)

    assert state.status is ServiceStatus.COMPLETED
    assert orchestrator.logs(client_id) == ["True"]
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/hostname", timeout=10) as reply:
        assert reply.status == 200
    orchestrator.undeploy(server_id, timeout=1.0)


@container
def test_a_missing_network_makes_health_not_ok_and_deploy_fail(make_docker: Any) -> None:
    orchestrator = make_docker(network_mode="flops-no-such-network")

    assert "docker network create" in orchestrator.health().message
    with pytest.raises(DeployError, match="does not exist"):
        orchestrator.deploy(spec("lost", "pass"))


def _attrs(status: str, **state: Any) -> dict[str, Any]:
    """A `docker inspect` answer, reduced to what the state mapping reads."""
    labels = {"io.flops.service-id": "s-1", "io.flops.project": "p", "io.flops.one-shot": "false"}
    return {
        "Name": state.pop("name", "/flops-s-1"),
        "RestartCount": state.pop("restarts", 0),
        "Created": "2026-01-01T00:00:00.5Z",
        "Config": {"Labels": labels},
        "HostConfig": {"RestartPolicy": state.pop("policy", {"Name": "no"})},
        "State": {"Status": status, "ExitCode": 0, "Pid": 0, **state},
    }


@pytest.mark.parametrize(
    ("attrs", "status", "says"),
    [
        (_attrs("created"), ServiceStatus.STARTING, "created"),
        (_attrs("created", Error="exec failed"), ServiceStatus.FAILED, "exec failed"),
        (_attrs("running", Pid=42), ServiceStatus.RUNNING, "running"),
        (_attrs("paused", Pid=42), ServiceStatus.RUNNING, "paused"),
        (
            _attrs("restarting", ExitCode=1, restarts=1, policy={"Name": "on-failure",
                   "MaximumRetryCount": 3}),
            ServiceStatus.PENDING, "restart 1 of 3",
        ),
        (_attrs("exited"), ServiceStatus.COMPLETED, "code 0"),
        (_attrs("exited", ExitCode=137, OOMKilled=True), ServiceStatus.FAILED, "out of memory"),
        (_attrs("dead", ExitCode=1), ServiceStatus.FAILED, "dead"),
        (_attrs("exited", ExitCode=143, name="/x-undeployed"), ServiceStatus.STOPPED, "SIGTERM"),
        (_attrs("running", name="/x-undeployed"), ServiceStatus.RUNNING, "running"),
    ],
)  # fmt: skip
def test_docker_states_map_onto_service_states(
    attrs: dict[str, Any], status: ServiceStatus, says: str
) -> None:
    state = container_state(attrs, DockerLabels(), cluster="docker", node="host")

    assert state.status is status
    assert says in state.message
    assert (state.service_id, state.project_id, state.node) == ("s-1", "p", "host")


def test_platform_choice() -> None:
    assert choose_platform([], "linux/amd64") is None
    assert choose_platform(["linux/arm64"], "linux/amd64") == "linux/arm64"
    assert choose_platform(["linux/arm64", "linux/amd64"], "linux/amd64") == "linux/amd64"
    assert choose_platform(["linux/arm64", "linux/arm/v7"], "linux/amd64") == "linux/arm64"
