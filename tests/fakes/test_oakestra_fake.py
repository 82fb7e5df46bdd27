"""Tests of the fake Oakestra root orchestrator itself, through HTTP like its real clients."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import jwt
import pytest

from flops_manager.orchestrators.local_process import host_platform
from tests.conftest import eventually
from tests.fakes.oakestra import FakeCluster, FakeNode, FakeOakestra, validate_sla
from tests.fakes.oakestra.scheduler import place

TERMINAL = {"COMPLETED", "FAILED", "DEAD"}
NEGATIVE = {
    "TargetClusterNotFound",
    "TargetClusterNotActive",
    "TargetClusterNoCapacity",
    "NoActiveClusterWithCapacity",
    "NO_WORKER_CAPACITY",
    "NO_QUALIFIED_WORKER_FOUND",
    "NO_NODE_FOUND",
}


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOakestra]:
    clusters = [
        FakeCluster("clusterA", nodes=[FakeNode("a1", memory_mb=4096, vcpus=4)]),
        FakeCluster("clusterB", nodes=[FakeNode("b1", platform="linux/riscv64")]),
        FakeCluster("clusterC", nodes=[FakeNode("c1")]),
    ]
    with FakeOakestra(
        users={"alice": "alice-pw", "bob": "bob-pw"},
        clusters=clusters,
        state_dir=tmp_path_factory.mktemp("oakestra"),
        step_delay_s=0.02,
    ) as started:
        yield started


@pytest.fixture
def client(fake: FakeOakestra) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=10.0) as http:
        yield http


def login(client: httpx.Client, user: str = "alice", password: str | None = None) -> dict[str, str]:
    reply = client.post(
        "/api/auth/login", json={"username": user, "password": password or f"{user}-pw"}
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def service(name: str = "svc", **fields: Any) -> dict[str, Any]:
    return {
        "microserviceID": "",
        "microservice_name": name,
        "microservice_namespace": "test",
        "virtualization": "container",
        "code": "ghcr.io/example/img:latest",
        "memory": 100,
        "vcpus": 1,
        **fields,
    }


def sla(*services: dict[str, Any], app: str | None = None) -> dict[str, Any]:
    return {
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [
            {
                "applicationID": "",
                "application_name": app or f"app{uuid.uuid4().hex[:8]}",
                "application_namespace": "test",
                "application_desc": "",
                "microservices": list(services),
            }
        ],
    }


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def create(client: httpx.Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """Register an app; return the new app from the double-encoded list."""
    reply = client.post("/api/application/", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    name = body["applications"][0]["application_name"]
    return next(a for a in json.loads(reply.json()) if a["application_name"] == name)


def get_service(client: httpx.Client, headers: dict[str, str], sid: str) -> dict[str, Any]:
    reply = client.get(f"/api/service/{sid}", headers=headers)
    assert reply.status_code == 200, reply.text
    document: dict[str, Any] = json.loads(reply.json())
    return document


def deploy(client: httpx.Client, headers: dict[str, str], svc: dict[str, Any]) -> str:
    sid: str = create(client, headers, sla(svc))["microservices"][0]
    reply = client.post(f"/api/service/{sid}/instance", headers=headers)
    assert reply.json() == {"message": "ok"}
    return sid


def wait_for(
    client: httpx.Client, headers: dict[str, str], sid: str, until: set[str], timeout: float = 8.0
) -> dict[str, Any]:
    return eventually(
        lambda: get_service(client, headers, sid), f"service {sid} in {sorted(until)}", timeout,
        until=lambda document: document.get("status") in until, interval=0.02,
    )  # fmt: skip


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


# Authentication -------------------------------------------------------------------------
def test_login_gives_jwts_with_oakestras_claims(client: httpx.Client) -> None:
    reply = client.post("/api/auth/login", json={"username": "alice", "password": "alice-pw"})

    claims = jwt.decode(reply.json()["token"], options={"verify_signature": False})
    assert set(reply.json()) == {"token", "refresh_token"}
    assert claims["sub"] == claims["user"] == "alice"
    assert claims["roles"] == ["Application_Provider"] and claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == pytest.approx(600, abs=2)


def test_bad_logins(client: httpx.Client) -> None:
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope"})
    no_json = client.post("/api/auth/login", content=b"username=alice")

    assert (wrong.status_code, wrong.json()) == (401, {"code": 401, "status": "Unauthorized"})
    assert no_json.status_code == 403


def test_expired_tokens_are_refused_per_route_family(
    fake: FakeOakestra, client: httpx.Client
) -> None:
    headers = login(client)
    refresh = client.post("/api/auth/login", json={"username": "alice", "password": "alice-pw"})
    refresh_token = refresh.json()["refresh_token"]

    fake.expire_tokens()

    app_route = client.get("/api/application/" + "0" * 24, headers=headers)
    service_route = client.get("/api/service/" + "0" * 24, headers=headers)
    assert (app_route.status_code, app_route.json()) == (401, {"msg": "Token has expired"})
    assert service_route.json() == {"message": "Missing authentication token"}
    renewed = client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {refresh_token}"})
    user = client.get(
        "/api/user/alice", headers={"Authorization": f"Bearer {renewed.json()['token']}"}
    )
    assert user.status_code == 200


def test_token_lifetime(tmp_path: Path) -> None:
    fake = FakeOakestra(users={"alice": "alice-pw"}, state_dir=tmp_path, token_lifetime_s=0.2)
    with fake, httpx.Client(base_url=fake.url) as http:
        headers = login(http)
        assert http.get("/api/user/alice", headers=headers).status_code == 200
        time.sleep(1.3)  # JWT `exp` is checked with whole seconds
        assert http.get("/api/user/alice", headers=headers).status_code == 401


def test_missing_and_foreign_tokens(client: httpx.Client) -> None:
    foreign = jwt.encode({"sub": "alice", "type": "access"}, "another-key-" * 4, "HS256")

    missing = client.get("/api/applications/")
    bad_signature = client.get("/api/applications/", headers={"Authorization": f"Bearer {foreign}"})

    assert (missing.status_code, missing.json()) == (401, {"msg": "Missing Authorization Header"})
    assert bad_signature.status_code == 422  # flask-jwt-extended's answer to a bad signature


def test_user_endpoint_only_for_yourself_and_single_encoded(
    fake: FakeOakestra, client: httpx.Client
) -> None:
    headers = login(client)

    mine = client.get("/api/user/alice", headers=headers)
    other = client.get("/api/user/bob", headers=headers)

    assert mine.headers["content-type"].startswith("text/html")
    assert mine.json()["_id"] == {"$oid": fake.user_id("alice")}
    assert mine.json()["roles"] == ["Application_Provider"]
    assert (other.status_code, other.json()) == (
        403,
        {"message": "You have not enough permissions!"},
    )


# Applications, services, encodings ------------------------------------------------------
def test_create_application_replies_all_apps_double_encoded(
    fake: FakeOakestra, client: httpx.Client
) -> None:
    headers = login(client, "bob")
    first = create(client, headers, sla(service("one")))

    reply = client.post(
        "/api/application/", json=sla(service("two"), service("three")), headers=headers
    )

    apps = json.loads(reply.json())
    assert isinstance(reply.json(), str)
    assert {a["_id"]["$oid"] for a in apps} >= {first["applicationID"]}
    assert all(a["userId"] == "bob" for a in apps) and len(apps[-1]["microservices"]) == 2
    mine = client.get(f"/api/applications/{fake.user_id('bob')}", headers=headers)
    not_mine = client.get(f"/api/applications/{fake.user_id('alice')}", headers=headers)
    assert len(json.loads(mine.json())) == len(apps) and not_mine.status_code == 401
    services = client.get(f"/api/services/{first['applicationID']}", headers=headers)
    [document] = json.loads(services.json())
    assert document["job_name"] == f"{first['application_name']}.test.one.test"
    assert document["microserviceID"] == document["_id"]["$oid"] and "status" not in document
    assert document["virtualization"] == "docker" and document["instance_list"] == []


def test_application_quirks(client: httpx.Client) -> None:
    headers = login(client)
    app = create(client, headers, sla(service()))
    app_id = app["applicationID"]

    get = client.get(f"/api/application/{app_id}", headers=headers)
    twice = client.post(
        "/api/application/", json=sla(service(), app=app["application_name"]), headers=headers
    )
    put = client.put(
        f"/api/service/{app['microservices'][0]}", json=sla(service()), headers=headers
    )

    assert (get.status_code, get.json()) == (200, None)
    assert (twice.status_code, twice.json()) == (409, {"code": 409, "status": "Conflict"})
    assert put.status_code == 501
    assert client.post("/api/application", json={}, headers=headers).status_code == 308


def test_sla_validation(client: httpx.Client) -> None:
    headers = login(client)
    no_code = service()
    del no_code["code"]

    bad_name = client.post("/api/application/", json=sla(service("bad-name")), headers=headers)
    missing = client.post("/api/application/", json=sla(no_code), headers=headers)
    v1 = client.post(
        "/api/application/", json={**sla(service()), "sla_version": "v1.0"}, headers=headers
    )
    typo = client.post("/api/application/", json=sla(service(vcpu=999)), headers=headers)

    assert bad_name.json() == {"code": 422, "status": "Unprocessable Entity"}
    assert missing.status_code == 422 and v1.status_code == 500 and typo.status_code == 200
    with pytest.raises(jsonschema.ValidationError):
        validate_sla(sla(service(microserviceID="x")))
    validate_sla(sla(service(vcpu=2, unknown_key={"kept": True})))


def test_post_service_adds_services_and_hides_errors_behind_400(client: httpx.Client) -> None:
    headers = login(client)
    app = create(client, headers, sla())
    body = sla(service("x"), service("y"))
    body["applications"][0]["applicationID"] = app["applicationID"]

    added = client.post("/api/service/", json=body, headers=headers)
    body["applications"][0]["applicationID"] = "f" * 24
    unknown_app = client.post("/api/service/", json=body, headers=headers)

    assert [s["service_name"] for s in added.json()["deployed_services"]] == ["x", "y"]
    services = json.loads(
        client.get(f"/api/services/{app['applicationID']}", headers=headers).json()
    )
    assert added.json()["job_id"] == services[-1]["_id"]["$oid"]
    assert (unknown_app.status_code, unknown_app.json()) == (
        400,
        {"code": 400, "status": "Bad Request"},
    )


def test_clusters_are_json_text_without_auth(fake: FakeOakestra, client: httpx.Client) -> None:
    fake.set_cluster_active("clusterC", False)
    try:
        every = client.get("/api/clusters/")
        active = client.get("/api/clusters/active")
    finally:
        fake.set_cluster_active("clusterC", True)

    assert every.headers["content-type"].startswith("text/html")
    assert [c["cluster_name"] for c in every.json()] == ["clusterA", "clusterB", "clusterC"]
    assert [c["cluster_name"] for c in active.json()] == ["clusterA", "clusterB"]
    assert every.json()[0]["memory_in_mb"] == 4096 and every.json()[0]["total_cpu_cores"] == 4


def test_fail_next_answers_without_effect(fake: FakeOakestra, client: httpx.Client) -> None:
    headers = login(client)
    before = len(fake.applications())
    fake.fail_next(method="POST", path=r"^/api/application/?$", status=500, times=1)

    failed = client.post("/api/application/", json=sla(service()), headers=headers)
    passed = client.post("/api/application/", json=sla(service()), headers=headers)

    assert (failed.status_code, failed.json()) == (
        500,
        {"code": 500, "status": "Internal Server Error"},
    )
    assert passed.status_code == 200 and len(fake.applications()) == before + 1
    assert fake.requests[-2][2] == 500 and fake.requests[-1][2] == 200


# Deployment -----------------------------------------------------------------------------
def test_one_shot_deploy_completes_with_an_instance_record(
    fake: FakeOakestra, client: httpx.Client
) -> None:
    headers = login(client)
    code = "import os, time; print('hello', os.environ['GREETING']); time.sleep(0.5)"
    svc = service(
        "job", one_shot=True, cmd=python(code), environment=["GREETING=oak"], port="9000:9000"
    )

    sid = deploy(client, headers, svc)

    document = wait_for(client, headers, sid, TERMINAL)
    [instance] = document["instance_list"]
    assert document["status"] == instance["status"] == "COMPLETED"
    assert instance["instance_number"] == 0 and instance["host_port"] == 50011
    assert instance["publicip"] == instance["host_ip"] == "127.0.0.1"
    assert instance["cluster_id"] and instance["worker_id"] and "hello oak" in instance["logs"]
    assert fake.received_slas[-1]["applications"][0]["microservices"][0]["cmd"] == svc["cmd"]


def test_exit_codes_map_to_failed_and_dead(client: httpx.Client) -> None:
    headers = login(client)

    failing = deploy(
        client, headers, service("bad", one_shot=True, cmd=python("raise SystemExit(3)"))
    )
    ending = deploy(client, headers, service("end", cmd=python("pass")))

    assert wait_for(client, headers, failing, TERMINAL)["status"] == "FAILED"
    assert wait_for(client, headers, ending, TERMINAL)["status"] == "DEAD"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"constraints": [{"type": "direct", "cluster": "nowhere"}]}, "TargetClusterNotFound"),
        (
            {"constraints": [{"type": "direct", "cluster": "clusterA", "node": "b1"}]},
            "NO_NODE_FOUND",
        ),
        ({"memory": 10**6}, "NoActiveClusterWithCapacity"),
        ({"virtualization": "unikernel", "arch": ["amd64"]}, "NoActiveClusterWithCapacity"),
        (
            {"constraints": [{"type": "direct", "cluster": "clusterA"}], "vcpus": 5},
            "TargetClusterNoCapacity",
        ),
    ],
)
def test_negative_scheduling_sets_the_service_status_and_adds_no_instance(
    client: httpx.Client, fields: dict[str, Any], expected: str
) -> None:
    headers = login(client)

    sid = deploy(client, headers, service(cmd=python("pass"), **fields))

    document = wait_for(client, headers, sid, NEGATIVE | TERMINAL)
    assert document["status"] == expected and document["instance_list"] == []


def test_inactive_cluster(fake: FakeOakestra, client: httpx.Client) -> None:
    headers = login(client)
    fake.set_cluster_active("clusterC", False)
    try:
        direct = [{"type": "direct", "cluster": "clusterC"}]
        sid = deploy(client, headers, service(cmd=python("pass"), constraints=direct))
        document = wait_for(client, headers, sid, NEGATIVE | TERMINAL)
    finally:
        fake.set_cluster_active("clusterC", True)

    assert document["status"] == "TargetClusterNotActive" and document["instance_list"] == []
    assert document["status_detail"] == "Waiting for scheduling decision"  # left as it was


def test_platform_picks_matching_nodes_or_fails_the_instance(client: httpx.Client) -> None:
    headers = login(client)
    other = [{"type": "direct", "cluster": "clusterB"}]

    wrong = deploy(
        client, headers, service(cmd=python("pass"), constraints=other, platform=host_platform())
    )
    right = deploy(
        client, headers, service(cmd=python("pass"), one_shot=True, platform=host_platform())
    )

    failed = wait_for(client, headers, wrong, TERMINAL)
    assert failed["status"] == "FAILED" and "no match for platform" in failed["status_detail"]
    assert wait_for(client, headers, right, TERMINAL)["status"] == "COMPLETED"


def test_head_statuses_map_to_what_oakestra_sends() -> None:
    clusters = [FakeCluster("A", nodes=[FakeNode("a1")])]
    job = {"virtualization": "docker", "constraints": [{"type": "direct", "cluster": "B"}]}

    assert place(job, clusters, {}) == "TargetClusterNotFound"
    assert place(job, clusters, {}, head_statuses=True) == "TargetClusterNotActive"


def test_delete_service_kills_its_process(fake: FakeOakestra, client: httpx.Client) -> None:
    headers = login(client)
    sid = deploy(client, headers, service("sleeper", cmd=python("import time; time.sleep(60)")))
    assert wait_for(client, headers, sid, {"RUNNING"} | TERMINAL)["status"] == "RUNNING"
    [pid] = [i.pid for i in fake.running_instances() if i.service_id == sid]

    deleted = client.delete(f"/api/service/{sid}", headers=headers)

    assert deleted.json() == {"message": "Job deleted"} and gone(pid)
    assert client.delete(f"/api/service/{sid}", headers=headers).status_code == 500
    assert all(s["_id"]["$oid"] != sid for s in fake.services())


def test_delete_application_kills_and_removes_everything(
    fake: FakeOakestra, client: httpx.Client
) -> None:
    headers = login(client)
    sid = deploy(client, headers, service("sleeper", cmd=python("import time; time.sleep(60)")))
    app_id = get_service(client, headers, sid)["applicationID"]
    wait_for(client, headers, sid, {"RUNNING"} | TERMINAL)
    [pid] = [i.pid for i in fake.running_instances() if i.service_id == sid]

    deleted = client.delete(f"/api/application/{app_id}", headers=headers)

    assert deleted.json() == {"message": "Application Deleted"} and gone(pid)
    assert client.delete(f"/api/application/{app_id}", headers=headers).status_code == 501
    assert client.post(f"/api/service/{'0' * 24}/instance", headers=headers).json() == {
        "message": "ok"
    }


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    fake = FakeOakestra(
        users={"alice": "alice-pw"},
        clusters=[FakeCluster("A", nodes=[FakeNode("a1")])],
        state_dir=tmp_path,
        step_delay_s=0.01,
    ).start()
    with httpx.Client(base_url=fake.url) as http:
        headers = login(http)
        sid = deploy(http, headers, service(cmd=python("import time; time.sleep(60)")))
        wait_for(http, headers, sid, {"RUNNING"} | TERMINAL)
    pids = [i.pid for i in fake.running_instances()]

    fake.stop()

    assert len(pids) == 1 and all(gone(pid) for pid in pids)
    with pytest.raises(httpx.TransportError):
        httpx.get(fake.url + "/api/clusters/", timeout=1.0)
