"""The `oakestra` backend against the fake root orchestrator (tests/fakes/oakestra)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flops_manager.orchestrators import (
    OakestraOrchestrator,
    Placement,
    PortMapping,
    Resources,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
)
from flops_manager.orchestrators.oakestra_client import decode
from flops_manager.orchestrators.oakestra_sla import application_name
from tests.conftest import eventually
from tests.fakes.oakestra import FakeCluster, FakeNode, FakeOakestra

SCHEMA = json.loads((Path(__file__).parents[2] / "fakes/oakestra/sla_schema.json").read_text())
PASSWORD = "alice-password-0123"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeOakestra]:
    clusters = [
        FakeCluster("clusterA", nodes=[FakeNode("a1", memory_mb=4096, vcpus=4)]),
        FakeCluster("clusterB", nodes=[FakeNode("b1", memory_mb=4096, vcpus=4)]),
    ]
    with FakeOakestra(
        users={"alice": PASSWORD}, clusters=clusters, state_dir=tmp_path / "fake",
        step_delay_s=0.02,
    ) as fake:  # fmt: skip
        yield fake


@pytest.fixture
def oak(fake: FakeOakestra) -> Iterator[OakestraOrchestrator]:
    orchestrator = OakestraOrchestrator(
        fake.url, username="alice", password=PASSWORD, backoff_s=0.01, poll_s=0.05
    )
    yield orchestrator
    orchestrator.close()


def spec(name: str, code: str, project: str = "p1", **fields: Any) -> ServiceSpec:
    return ServiceSpec(
        name=name, project_id=project, role="learner", image="127.0.0.1:5050/x/learner:abc",
        command=[sys.executable, "-c", code], one_shot=True, **fields,
    )  # fmt: skip


def wait(oak: OakestraOrchestrator, service_id: str, seconds: float = 15.0) -> ServiceState:
    return eventually(
        lambda: oak.status(service_id), f"service {service_id} ended", seconds,
        until=lambda state: state.status.terminal, interval=0.05,
    )  # fmt: skip


def test_a_one_shot_service_runs_to_completed_and_its_app_goes_with_it(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    # Execute
    service_id = oak.deploy(
        spec("job1", "import time; print('hello', flush=True); time.sleep(0.3)",
             resources=Resources(memory_mb=256, vcpus=0.5))
    )  # fmt: skip
    seen = {oak.status(service_id).status}
    state = wait(oak, service_id)
    seen.add(state.status)

    # Assert
    assert state.status is ServiceStatus.COMPLETED, state
    assert state.cluster in {"clusterA", "clusterB"}
    assert ServiceStatus.PENDING in seen or ServiceStatus.STARTING in seen
    apps = fake.applications()
    assert [a["application_name"] for a in apps] == [application_name("p1")]
    sla = fake.received_slas[0]
    jsonschema.validate(sla, SCHEMA)
    entry = sla["applications"][0]["microservices"][0]
    assert (entry["memory"], entry["vcpus"], entry["one_shot"]) == (256, 1, True)
    oak.undeploy(service_id)
    assert oak.status(service_id).status is ServiceStatus.COMPLETED  # the first end counts
    assert fake.applications() == [] and fake.services() == []


def test_services_of_a_project_share_one_application_created_then_appended(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    # Execute
    first = oak.deploy(spec("agg", "import time; time.sleep(30)"))
    rest = oak.deploy_many([spec(f"l{i}", "import time; time.sleep(30)") for i in range(3)])

    # Assert
    assert len({first, *rest}) == 4
    posts = [(m, p) for m, p, _ in fake.requests if m == "POST" and "instance" not in p]
    assert [p for _, p in posts if p != "/api/auth/login"] == ["/api/application/", "/api/service/"]
    assert len(fake.applications()) == 1
    assert len(fake.applications()[0]["microservices"]) == 4
    for sla in fake.received_slas:
        jsonschema.validate(sla, SCHEMA)
    for service_id in [first, *rest]:
        oak.undeploy(service_id)
    assert fake.applications() == [] and fake.running_instances() == []


def test_an_expired_token_is_replaced_by_a_new_login(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    # Prepare
    service_id = oak.deploy(spec("job1", "import time; time.sleep(0.2)"))
    logins = oak.client.logins

    # Execute
    fake.expire_tokens()
    state = wait(oak, service_id)

    # Assert
    assert state.status is ServiceStatus.COMPLETED
    assert oak.client.logins == logins + 1
    assert any(status == 401 for _, _, status in fake.requests)


def test_a_server_error_is_retried_and_then_succeeds(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    # Prepare
    fake.fail_next(method="POST", path=r"^/api/application/?$", status=500, times=1)

    # Execute
    service_id = oak.deploy(spec("job1", "pass"))

    # Assert
    statuses = [s for m, p, s in fake.requests if m == "POST" and p.startswith("/api/application")]
    assert statuses == [500, 200]
    assert wait(oak, service_id).status is ServiceStatus.COMPLETED
    assert len(fake.applications()) == 1


def test_persistent_server_errors_end_as_unavailable_with_the_attempts(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    from flops_manager.orchestrators import OrchestratorUnavailableError

    fake.fail_next(method="POST", path=r"^/api/application/?$", status=500, times=10)
    with pytest.raises(OrchestratorUnavailableError, match="HTTP 500 after 5 attempts"):
        oak.deploy(spec("job1", "pass"))


def test_double_encoded_replies_are_decoded_to_objects(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    import httpx

    # Prepare: Oakestra answers a service as a JSON string that holds JSON
    service_id = oak.deploy(spec("job1", "pass"))
    token = httpx.post(
        f"{fake.url}/api/auth/login", json={"username": "alice", "password": PASSWORD}
    ).json()["token"]
    raw = httpx.get(
        f"{fake.url}/api/service/{service_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert isinstance(raw, str)

    # Execute / Assert: the backend sees an object
    assert isinstance(decode(raw), dict)
    assert wait(oak, service_id).status is ServiceStatus.COMPLETED
    assert decode('"[1, 2]"') == [1, 2]
    assert decode("not json") == "not json"


@pytest.mark.parametrize(
    ("placement", "resources", "expected"),
    [
        (Placement(cluster="nowhere"), Resources(), "TargetClusterNotFound"),
        (Placement(), Resources(memory_mb=999_999), "NoActiveClusterWithCapacity"),
        (Placement(cluster="clusterA", node="zz"), Resources(), "NO_NODE_FOUND"),
    ],
)
def test_negative_scheduling_fails_the_service_with_an_explanation(
    oak: OakestraOrchestrator, placement: Placement, resources: Resources, expected: str
) -> None:
    # Execute
    service_id = oak.deploy(spec("job1", "pass", placement=placement, resources=resources))
    state = wait(oak, service_id)

    # Assert
    assert state.status is ServiceStatus.FAILED
    assert expected in state.message and "Oakestra could not place it" in state.message
    assert expected in " ".join(oak.logs(service_id))


def test_an_inactive_cluster_is_not_listed_and_pinning_to_it_fails(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    fake.set_cluster_active("clusterB", False)
    assert [c.name for c in oak.clusters()] == ["clusterA"]
    service_id = oak.deploy(spec("job1", "pass", placement=Placement(cluster="clusterB")))
    assert "TargetClusterNotActive" in wait(oak, service_id).message


def test_placement_and_ports_reach_the_sla_and_the_address(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    # Execute
    service_id = oak.deploy(
        spec("agg", "import time; time.sleep(30)", placement=Placement(cluster="clusterB"),
             ports=[PortMapping(container_port=18080)], platforms=["linux/amd64"])
    )  # fmt: skip
    state = eventually(
        lambda: oak.status(service_id), f"service {service_id} running", 10,
        until=lambda state: state.status is ServiceStatus.RUNNING, interval=0.05,
    )  # fmt: skip

    # Assert
    entry = fake.received_slas[0]["applications"][0]["microservices"][0]
    assert entry["constraints"] == [{"type": "direct", "cluster": "clusterB"}]
    assert (entry["port"], entry["platform"]) == ("18080:18080/tcp", "linux/amd64")
    assert state.address == "127.0.0.1:18080" and state.cluster == "clusterB"
    oak.undeploy(service_id)
    assert oak.status(service_id).status is ServiceStatus.STOPPED
    assert fake.running_instances() == []


def test_wrong_credentials_and_an_unreachable_root_are_unhealthy(
    fake: FakeOakestra,
) -> None:
    with OakestraOrchestrator(fake.url, username="alice", password="wrong") as bad:
        health = bad.health()
        assert not health.ok and "FLOPS_OAKESTRA_PASSWORD" in health.message
        assert "wrong" not in health.message
    with OakestraOrchestrator("http://127.0.0.1:9", username="a", password="b") as down:
        assert "not reachable" in down.health().message


def test_a_spec_without_an_image_is_refused_before_any_call(oak: OakestraOrchestrator) -> None:
    from flops_manager.orchestrators import DeployError

    with pytest.raises(DeployError, match="container images"):
        oak.deploy(ServiceSpec(name="x", project_id="p1", role="learner", command=["true"]))


def test_credentials_in_the_environment_never_reach_an_sla(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    from flops_manager.orchestrators import DeployError

    # Execute: the image builder's spec for a repo URL with a token in it
    builder = spec(
        "builder", "pass", privileged=True, volumes={"flops-build-cache": "/var/lib/containers"},
        env={"FLOPS_REPO_URL": "https://me:s3cr3t-token@git.example.org/me/repo.git"},
    )  # fmt: skip
    with pytest.raises(DeployError, match="FLOPS_REPO_URL holds a URL with credentials") as error:
        oak.deploy(builder)

    # Assert
    assert "s3cr3t-token" not in str(error.value)
    assert fake.received_slas == [] and fake.applications() == []


def test_the_builder_sla_validates_against_the_schema(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    builder = spec(
        "b1", "pass", privileged=True, volumes={"flops-build-cache": "/var/lib/containers"},
        env={"FLOPS_REPO_URL": "https://git.example.org/me/repo.git", "STORAGE_DRIVER": "vfs"},
        platforms=["linux/amd64", "linux/arm64"],
    )  # fmt: skip
    service_id = oak.deploy(builder)
    jsonschema.validate(fake.received_slas[0], SCHEMA)
    entry = fake.received_slas[0]["applications"][0]["microservices"][0]
    assert entry["privileged"] is True and "platform" not in entry  # a multi-platform image
    assert "STORAGE_DRIVER=vfs" in entry["environment"]
    assert wait(oak, service_id).status is ServiceStatus.COMPLETED


def test_a_restarted_manager_deletes_services_deployed_before_the_restart(
    fake: FakeOakestra, oak: OakestraOrchestrator
) -> None:
    # Prepare: two services of one project, deployed by the manager before its restart
    first = oak.deploy(spec("old1", "import time; time.sleep(60)"))
    second = oak.deploy(spec("old2", "import time; time.sleep(60)"))
    restarted = OakestraOrchestrator(
        fake.url, username="alice", password=PASSWORD, backoff_s=0.01, poll_s=0.05
    )

    try:
        # Execute
        restarted.undeploy(first)
        after_first = (len(fake.services()), len(fake.applications()))
        restarted.undeploy(second)
        restarted.undeploy(second)  # already gone: nothing to do

        # Assert: the application went with its last service
        assert after_first == (1, 1)
        assert fake.services() == [] and fake.applications() == []
    finally:
        restarted.close()
