"""Oakestra access tokens at the manager, and what the `oak addon flops` CLIs send.

A real fake Oakestra root (`tests.fakes.oakestra`) issues real JWTs and answers
`GET /api/user/<name>` the way Oakestra does. The authentication tests run the app in-process
(as `test_auth.py` does); the CLI-compatibility tests need project runtime (tracking, projects,
mocks) and run against a real `python -m flops_manager`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flops_manager.core.config import Settings
from flops_manager.db import Database, Project, ProjectService
from flops_manager.main import create_app
from tests.conftest import eventually, free_port
from tests.fakes.oakestra import FakeCluster, FakeNode, FakeOakestra
from tests.flops_manager.api.conftest import ADMIN_TOKEN
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

USERS = {"alice": "alice-pw", "bob": "bob-pw", "Admin": "admin-pw"}
WHOAMI = "/api/flops/whoami"
PROJECTS = "/api/flops/projects"
DATABASE = "/api/flops/database"

#: `oak_cli/addons/flops/SLAs/projects/mnist_sklearn_small.json` (oakestra-cli @ f03027a5), as
#: `oak addon flops project <sla-file>` sends it: the file's JSON, unchanged.
ORIGINAL_PROJECT_SLA: dict[str, Any] = {
    "verbose": True,
    "customerID": "Admin",
    "ml_repo_url": "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn",
    "ml_model_flavor": "sklearn",
    "use_devel_base_images": False,
    "supported_platforms": ["linux/amd64"],
    "training_configuration": {
        "mode": "classic",
        "data_tags": ["mnist"],
        "training_rounds": 3,
        "min_available_clients": 2,
        "min_fit_clients": 2,
        "min_evaluate_clients": 2,
    },
    "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"],
    "resource_constraints": {"memory": 100, "vcpus": 1, "storage": 0},
}


def _fake(state_dir: Path) -> FakeOakestra:
    return FakeOakestra(
        users=dict(USERS),
        clusters=[FakeCluster("clusterA", nodes=[FakeNode("a1")])],
        state_dir=state_dir,
        token_lifetime_s=600.0,
    )


def login(fake: FakeOakestra, username: str) -> str:
    """What the oak CLI does first: `POST /api/auth/login` at the Oakestra root."""
    response = httpx.post(
        f"{fake.url}/api/auth/login",
        json={"username": username, "password": USERS[username]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    if isinstance(body, str):
        body = json.loads(body)
    return str(body["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_lookups(fake: FakeOakestra) -> list[tuple[str, str, int]]:
    return [r for r in fake.requests if r[0] == "GET" and r[1].startswith("/api/user/")]


def _settings(tmp_path: Path, oakestra_url: str) -> Settings:
    return Settings(
        admin_token=ADMIN_TOKEN,
        data_dir=tmp_path,
        accept_oakestra_tokens=True,
        oakestra_url=oakestra_url,
        oakestra_retries=2,
        oakestra_backoff_s=0.01,
        _env_file=None,
    )


@pytest.fixture
def oakestra(tmp_path: Path) -> Iterator[FakeOakestra]:
    with _fake(tmp_path / "oakestra") as fake:
        yield fake


@pytest.fixture
def oak_client(tmp_path: Path, database: Database, oakestra: FakeOakestra) -> Iterator[TestClient]:
    """The app in-process, accepting Oakestra tokens checked by `oakestra`."""
    app = create_app(_settings(tmp_path, oakestra.url), database=database, start_projects=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def flops_log() -> Iterator[list[str]]:
    """Every record of the `flops.*` loggers, formatted, whatever other tests configured."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("flops")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def _add_project(database: Database, customer: str, state: str = "completed") -> str:
    with database.session() as session:
        project = Project(customer_id=customer, state=state, config={}, repo_url="file:///r")
        session.add(project)
        session.flush()
        return project.id


# ---- who the caller is ---------------------------------------------------------------------


def test_oakestra_user_is_the_customer_and_sees_only_its_projects(
    oak_client: TestClient, oakestra: FakeOakestra, database: Database
) -> None:
    # Prepare
    mine = _add_project(database, "alice")
    _add_project(database, "bob")
    token = login(oakestra, "alice")

    # Execute
    me = oak_client.get(WHOAMI, headers=bearer(token))
    listed = oak_client.get(PROJECTS, headers=bearer(token))

    # Assert
    assert me.status_code == 200, me.text
    assert me.json() == {"customer_id": "alice", "is_admin": False}
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()] == [mine]
    assert oak_client.get("/api/flops/tokens", headers=bearer(token)).status_code == 403


def test_oakestra_admin_is_admin(oak_client: TestClient, oakestra: FakeOakestra) -> None:
    token = login(oakestra, "Admin")

    me = oak_client.get(WHOAMI, headers=bearer(token))
    tokens = oak_client.get("/api/flops/tokens", headers=bearer(token))

    assert me.json() == {"customer_id": "Admin", "is_admin": True}
    assert tokens.status_code == 200


def test_bare_oakestra_token_is_accepted(oak_client: TestClient, oakestra: FakeOakestra) -> None:
    response = oak_client.get(WHOAMI, headers={"Authorization": login(oakestra, "bob")})

    assert response.json() == {"customer_id": "bob", "is_admin": False}


def test_flops_tokens_still_work_and_never_ask_oakestra(
    oak_client: TestClient, oakestra: FakeOakestra
) -> None:
    created = oak_client.post(
        "/api/flops/tokens", headers=bearer(ADMIN_TOKEN), json={"customer_id": "acme"}
    )

    me = oak_client.get(WHOAMI, headers=bearer(created.json()["token"]))

    assert me.json() == {"customer_id": "acme", "is_admin": False}
    assert user_lookups(oakestra) == []


# ---- what is refused, and how ---------------------------------------------------------------


def test_expired_oakestra_token_is_401(oak_client: TestClient, oakestra: FakeOakestra) -> None:
    token = login(oakestra, "alice")
    oakestra.expire_tokens()

    response = oak_client.get(WHOAMI, headers=bearer(token))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"].startswith("invalid Oakestra token: ")
    assert token not in response.text


def test_token_past_its_exp_is_refused_without_asking_oakestra(
    oak_client: TestClient, oakestra: FakeOakestra
) -> None:
    token = jwt.encode({"sub": "alice", "exp": time.time() - 5}, "k" * 32, algorithm="HS256")

    response = oak_client.get(WHOAMI, headers=bearer(token))

    assert response.status_code == 401
    assert "invalid Oakestra token: it expired at" in response.json()["detail"]
    assert user_lookups(oakestra) == []


def test_token_of_another_issuer_or_garbage_is_401(
    oak_client: TestClient, oakestra: FakeOakestra, tmp_path: Path
) -> None:
    # A well-formed JWT for a real user, claiming Admin, but not signed by this Oakestra
    forged = jwt.encode(
        {"sub": "alice", "roles": ["Admin"], "type": "access", "exp": time.time() + 600},
        "not-oakestras-key-0123456789abcdef",
        algorithm="HS256",
    )
    with _fake(tmp_path / "other-root") as other:
        foreign = login(other, "alice")  # a real token of another Oakestra root
    garbage = "eyJub3QiOiJqc29uIn0.bm9wZQ.c2ln"

    answers = {
        name: oak_client.get(WHOAMI, headers=bearer(token))
        for name, token in {"forged": forged, "foreign": foreign, "garbage": garbage}.items()
    }
    opaque = oak_client.get(WHOAMI, headers=bearer("flops_not-a-token-at-all"))

    for name, response in answers.items():
        assert response.status_code == 401, (name, response.text)
        assert response.json()["detail"].startswith("invalid Oakestra token: "), name
    assert "rejected it" in answers["forged"].json()["detail"]
    assert "not a readable JWT" in answers["garbage"].json()["detail"]
    assert opaque.status_code == 401
    assert opaque.json() == {"detail": "invalid or revoked API token"}


def test_refresh_token_is_refused(oak_client: TestClient, oakestra: FakeOakestra) -> None:
    response = httpx.post(
        f"{oakestra.url}/api/auth/login", json={"username": "alice", "password": "alice-pw"}
    )
    body = response.json()
    refresh = (json.loads(body) if isinstance(body, str) else body)["refresh_token"]

    answer = oak_client.get(WHOAMI, headers=bearer(refresh))

    assert answer.status_code == 401
    assert "not an access token" in answer.json()["detail"]


def test_oakestra_unreachable_is_503_with_what_to_do(
    tmp_path: Path, database: Database, oakestra: FakeOakestra
) -> None:
    # Prepare: a manager pointed at a port nothing listens on
    token = login(oakestra, "alice")
    app = create_app(
        _settings(tmp_path, f"http://127.0.0.1:{free_port()}"), database=database,
        start_projects=False,
    )  # fmt: skip

    # Execute
    with TestClient(app) as client:
        response = client.get(WHOAMI, headers=bearer(token))

    # Assert
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "not reachable" in detail
    assert "FLOPS_OAKESTRA_URL" in detail
    assert token not in response.text


def test_oakestra_failing_is_503_and_one_failure_is_retried(
    oak_client: TestClient, oakestra: FakeOakestra
) -> None:
    alice, bob = login(oakestra, "alice"), login(oakestra, "bob")

    oakestra.fail_next(method="GET", path=r"^/api/user/", status=500, times=3)  # 3 attempts
    failing = oak_client.get(WHOAMI, headers=bearer(alice))
    oakestra.fail_next(method="GET", path=r"^/api/user/", status=500, times=1)
    retried = oak_client.get(WHOAMI, headers=bearer(bob))

    assert failing.status_code == 503
    assert "keeps answering HTTP 500" in failing.json()["detail"]
    assert retried.status_code == 200, retried.text
    assert retried.json()["customer_id"] == "bob"


def test_confirmed_token_is_cached_and_failures_are_not(
    oak_client: TestClient, oakestra: FakeOakestra
) -> None:
    alice = login(oakestra, "alice")
    oakestra.fail_next(method="GET", path=r"^/api/user/", status=500, times=3)

    first = oak_client.get(WHOAMI, headers=bearer(alice))  # 503: three 500s, not remembered
    second = oak_client.get(WHOAMI, headers=bearer(alice))  # asks again, confirmed
    lookups = len(user_lookups(oakestra))
    third = oak_client.get(PROJECTS, headers=bearer(alice))  # from the cache

    assert (first.status_code, second.status_code, third.status_code) == (503, 200, 200)
    assert len(user_lookups(oakestra)) == lookups == 4


def test_oakestra_tokens_are_refused_unless_enabled(
    client: TestClient, oakestra: FakeOakestra
) -> None:
    response = client.get(WHOAMI, headers=bearer(login(oakestra, "Admin")))

    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked API token"}
    assert user_lookups(oakestra) == []


def test_tokens_are_never_logged(
    oak_client: TestClient, oakestra: FakeOakestra, flops_log: list[str]
) -> None:
    good, expired = login(oakestra, "alice"), login(oakestra, "bob")
    oakestra.expire_tokens()
    good = login(oakestra, "alice")

    oak_client.get(WHOAMI, headers=bearer(good))
    oak_client.get(WHOAMI, headers=bearer(expired))

    assert any("'alice' confirmed" in line for line in flops_log)
    assert not [line for line in flops_log if good in line or expired in line]


# ---- DELETE /api/flops/database (oak addon flops reset-database) --------------------------


def test_reset_database_is_admin_only_and_forgets_finished_projects(
    oak_client: TestClient, oakestra: FakeOakestra, database: Database
) -> None:
    # Prepare
    for customer in ("alice", "bob"):
        _add_project(database, customer)
    alice, admin = bearer(login(oakestra, "alice")), bearer(login(oakestra, "Admin"))

    # Execute: exactly what the oak CLIs send (JSON body on DELETE)
    denied = oak_client.request("DELETE", DATABASE, headers=alice, json={"customerID": "alice"})
    not_admin_id = oak_client.request("DELETE", DATABASE, headers=admin,
                                      json={"customerID": "alice"})  # fmt: skip
    reset = oak_client.request("DELETE", DATABASE, headers=admin, json={"customerID": "Admin"})
    again = oak_client.request("DELETE", f"{DATABASE}/?customerID=Admin", headers=admin)

    # Assert
    assert denied.status_code == 403
    assert not_admin_id.status_code == 403
    assert reset.status_code == 200, reset.text
    assert reset.json()["message"] == "Successfully reset the database."
    assert reset.json()["deleted_projects"] == 2
    assert "API tokens" in reset.json()["kept"]
    assert again.status_code == 200
    assert again.json()["deleted_projects"] == 0
    assert oak_client.get(PROJECTS, headers=admin).json() == []


def test_reset_database_refuses_while_something_runs(
    oak_client: TestClient, oakestra: FakeOakestra, database: Database
) -> None:
    admin = bearer(login(oakestra, "Admin"))
    active = _add_project(database, "alice", state="training")

    confirm = {"customerID": "Admin"}
    while_active = oak_client.request("DELETE", DATABASE, headers=admin, json=confirm)
    with database.session() as session:
        _finish_with_live_service(session, active)
    while_live = oak_client.request("DELETE", DATABASE, headers=admin, json=confirm)

    assert while_active.status_code == 409
    assert active in while_active.json()["detail"]
    assert "cancel them first" in while_active.json()["detail"]
    assert while_live.status_code == 409
    assert "never undeployed" in while_live.json()["detail"]
    assert len(oak_client.get(PROJECTS, headers=admin).json()) == 1


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {}},
        {},
        {"json": {"customerID": None}},
        {"json": {"customerID": ""}},
        {"params": {"customerID": ""}},
    ],
    ids=["empty-object", "no-body", "null", "empty-string", "empty-query"],
)
def test_reset_database_without_customer_id_admin_deletes_nothing(
    client: TestClient, admin: dict[str, str], database: Database, request_kwargs: dict[str, Any]
) -> None:
    # Prepare: finished projects an admin token could wipe by mistake
    kept = {_add_project(database, "alice"), _add_project(database, "bob")}

    # Execute: the admin token, but the request does not say customerID "Admin"
    refused = client.request("DELETE", DATABASE, headers=admin, **request_kwargs)

    # Assert
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "customerID"]
    assert '{"customerID": "Admin"}' in refused.json()["message"]
    assert {p["id"] for p in client.get(PROJECTS, headers=admin).json()} == kept


@pytest.mark.parametrize("customer_id", ["admin", "ADMIN", "Admin ", "alice"])
def test_reset_database_with_another_customer_id_is_403(
    client: TestClient, admin: dict[str, str], database: Database, customer_id: str
) -> None:
    kept = _add_project(database, "alice")

    refused = client.request("DELETE", DATABASE, headers=admin, json={"customerID": customer_id})

    assert refused.status_code == 403
    assert [p["id"] for p in client.get(PROJECTS, headers=admin).json()] == [kept]


def _finish_with_live_service(session: Session, project_id: str) -> None:
    project = session.get(Project, project_id)
    assert project is not None
    project.state = "failed"
    session.add(
        ProjectService(project_id=project_id, service_id="svc1", role="learner",
                       orchestrator="local")
    )  # fmt: skip


def test_database_body_that_is_not_json_is_a_clear_422(
    oak_client: TestClient, oakestra: FakeOakestra
) -> None:
    response = oak_client.request(
        "DELETE", DATABASE, headers=bearer(ADMIN_TOKEN), content=b"customerID=Admin"
    )

    assert response.status_code == 422
    assert "JSON object" in response.json()["message"]


# ---- the oak CLI against a real manager ----------------------------------------------------


@dataclass(frozen=True)
class OakSetup:
    """A fake Oakestra root and a real manager that accepts its tokens."""

    fake: FakeOakestra
    base: str
    log: Path


@pytest.fixture(scope="module")
def oak_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OakSetup]:
    """A fake Oakestra root and a real manager (2 simulated nodes) that accepts its tokens."""
    workdir = tmp_path_factory.mktemp("oak-manager")
    with _fake(workdir / "oakestra") as fake:
        manager = ManagerProcess(
            workdir, FLOPS_LOCAL_NODES="2", FLOPS_ACCEPT_OAKESTRA_TOKENS="true",
            FLOPS_OAKESTRA_URL=fake.url, FLOPS_OAKESTRA_RETRIES="1",
            FLOPS_OAKESTRA_BACKOFF_S="0.05",
        )  # fmt: skip
        try:
            manager.start(timeout=120)
            yield OakSetup(fake, manager.url, manager.log)
        finally:
            manager.stop()


def _wait_final(base: str, project_id: str, timeout: float = 120) -> dict[str, Any]:
    project: dict[str, Any] = eventually(
        lambda: httpx.get(
            f"{base}{PROJECTS}/{project_id}", headers=bearer(ADMIN_TOKEN), timeout=30
        ).json(),
        f"project {project_id} final",
        timeout,
        until=lambda project: project["state"] in FINAL,
        interval=0.5,
    )
    return dict(project)


@pytest.mark.e2e
def test_tracking_as_both_oak_clis_send_it(oak_setup: OakSetup) -> None:
    fake, base = oak_setup.fake, oak_setup.base
    alice, admin = bearer(login(fake, "alice")), bearer(login(fake, "Admin"))
    url = f"{base}/api/flops/tracking"

    with httpx.Client(timeout=30) as http:
        go_cli = http.get(url, params={"customerID": "alice"}, headers=alice)  # Go oak CLI
        py_cli = http.request("GET", url, json={"customerID": "alice"}, headers=alice)  # Python
        slash = http.request("GET", f"{url}/", json={"customerID": "alice"}, headers=alice)
        plain = http.get(url, headers=alice)
        default_admin = http.get(url, params={"customerID": "Admin"}, headers=admin)
        other = http.get(url, params={"customerID": "bob"}, headers=alice)
        other_body = http.request("GET", url, json={"customerID": "bob"}, headers=alice)

    for response in (go_cli, py_cli, slash, plain, default_admin):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["tracking_server_url"] == body["tracking_url"]
        assert body["tracking_server_url"].startswith("http://")
    assert go_cli.json()["customer_id"] == py_cli.json()["customer_id"] == "alice"
    assert default_admin.json()["customer_id"] == "Admin"
    assert (other.status_code, other_body.status_code) == (403, 403)


@pytest.mark.e2e
def test_oak_addon_flops_project_with_an_original_sla(oak_setup: OakSetup) -> None:
    # Prepare: the original SLA as `oak addon flops project` sends it. The runnable variant
    # has no post-training steps and a local repo URL the manager accepts without looking at
    # it (FLOPS_ALLOW_LOCAL_REPOS); the project fails at the clone, which is not the point.
    fake, base = oak_setup.fake, oak_setup.base
    admin, alice = bearer(login(fake, "Admin")), bearer(login(fake, "alice"))
    runnable = ORIGINAL_PROJECT_SLA | {
        "ml_repo_url": "file:///nonexistent/flops-oak-cli-repo", "post_training_steps": [],
    }  # fmt: skip

    # Execute
    with httpx.Client(timeout=60) as http:
        original = http.post(f"{base}{PROJECTS}", json=ORIGINAL_PROJECT_SLA, headers=admin)
        created = http.post(f"{base}{PROJECTS}", json=runnable, headers=admin)
        as_alice = http.post(f"{base}{PROJECTS}/", headers=alice,
                             json=runnable | {"customerID": "alice"})  # fmt: skip
        alice_as_admin = http.post(f"{base}{PROJECTS}", json=runnable, headers=alice)

    # Assert: the original SLA, post-training steps included, is accepted as the original
    # manager accepted it (it fails later: GitHub cannot be reached from here)
    assert original.status_code == 201, original.text
    assert original.json()["message"] == "New FLOps project started successfully"
    assert created.status_code == 201, created.text
    assert created.json()["message"] == "New FLOps project started successfully"
    assert as_alice.status_code == 201, as_alice.text
    assert alice_as_admin.status_code == 403  # customerID "Admin" is not alice's
    projects = {p["id"]: p for p in httpx.get(f"{base}{PROJECTS}", headers=alice).json()}
    assert list(projects) == [as_alice.json()["id"]]
    assert projects[as_alice.json()["id"]]["customer_id"] == "alice"
    for project_id in (original.json()["id"], created.json()["id"], as_alice.json()["id"]):
        _wait_final(base, project_id)


@pytest.mark.e2e
def test_mock_data_and_database_reset_with_oakestra_tokens(
    oak_setup: OakSetup,
) -> None:
    fake, base = oak_setup.fake, oak_setup.base
    alice, admin = bearer(login(fake, "alice")), bearer(login(fake, "Admin"))
    mock_sla = {
        "customerID": "alice",
        "mock_data_configuration": {
            "dataset_name": "digits", "number_of_partitions": 2, "data_tag": "digits",
        },
    }  # fmt: skip

    with httpx.Client(timeout=120) as http:
        mocks = http.post(f"{base}/api/flops/mocks", json=mock_sla, headers=alice)
        mocks_slash = http.post(f"{base}/api/flops/mocks/", json=mock_sla, headers=alice)
        for project in http.get(f"{base}{PROJECTS}", headers=admin).json():
            _wait_final(base, project["id"])
        denied = http.request("DELETE", f"{base}{DATABASE}", headers=alice,
                              json={"customerID": "alice"})  # fmt: skip
        reset = http.request("DELETE", f"{base}{DATABASE}/", headers=admin,
                             json={"customerID": "Admin"})  # fmt: skip
        left = http.get(f"{base}{PROJECTS}", headers=admin).json()

    assert mocks.status_code == 201, mocks.text
    assert mocks_slash.status_code == 201, mocks_slash.text
    assert denied.status_code == 403
    assert reset.status_code == 200, reset.text
    assert left == []
    output = oak_setup.log.read_text(errors="replace")
    assert "DELETE /api/flops/database" in output  # the log is really captured
    for token in (alice["Authorization"], admin["Authorization"]):
        assert token.removeprefix("Bearer ") not in output
