"""Projects through the real HTTP API of a real manager, with the real local backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import eventually
from tests.flops_manager.api.conftest import ADMIN_TOKEN, alive
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Manager(ManagerProcess):
    """A manager whose services' process groups the tests can look at."""

    def project_pgids(self, project_id: str) -> list[int]:
        project = self.api("GET", f"/projects/{project_id}").json()
        state_dir = self.workdir / "data" / "services"
        pgids = []
        for service in project["services"]:
            record = state_dir / service["service_id"] / "service.json"
            if record.exists():
                pgid = json.loads(record.read_text()).get("pgid")
                if pgid:
                    pgids.append(int(pgid))
        return pgids


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    manager = Manager(tmp_path_factory.mktemp("manager"))
    try:
        manager.start()
        manager.push_mock_data(partitions=3)
        yield manager
    finally:
        manager.stop()


def _body(repo_url: str, rounds: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": rounds, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3,
        },
        **extra,
    }  # fmt: skip


def test_project_runs_to_completed_with_metrics_and_a_champion(
    manager: Manager, repo_url: str
) -> None:
    # Execute
    created = manager.api("POST", "/projects", json=_body(repo_url))

    # Assert: 201 at once, then the project carries itself to completed
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    assert created.json()["url"].endswith(f"/api/flops/projects/{project_id}")
    project = manager.wait_state(project_id, FINAL)
    assert project["state"] == "completed", project["message"]
    training = project["result"]["training"]
    assert training["metrics"]["accuracy"] >= 0.8
    states = [e["type"] for e in manager.api("GET", f"/projects/{project_id}/events").json()
              if e["kind"] == "state"]  # fmt: skip
    assert states == ["pending", "building", "training", "completed"]
    tracking = manager.api("GET", "/tracking").json()["tracking_url"]
    client = MlflowClient(tracking)
    version = client.get_model_version_by_alias(f"flops-{project_id}", "champion")
    assert version.version == training["model"]["version"]
    run = client.get_run(training["mlflow_run_id"])
    assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 3
    assert all(s["undeployed_at"] for s in project["services"])
    assert not [p for p in manager.project_pgids(project_id) if alive(p)]
    # The event stream replays everything and ends, as the project is final
    with httpx.stream(
        "GET", f"{manager.url}/api/flops/projects/{project_id}/events/stream", headers=ADMIN,
        timeout=30,
    ) as stream:  # fmt: skip
        assert stream.headers["content-type"].startswith("text/event-stream")
        data = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    rounds = [e["data"]["round"] for e in data if e["type"] == "round_completed"]
    assert rounds == [1, 2, 3]
    assert data[-1]["type"] == "completed"


def test_the_embedded_default_shows_its_simulated_nodes_with_their_data(
    manager: Manager, repo_url: str
) -> None:
    # Prepare: the fixture pushed 3 partitions of digits; a project reads them
    project = manager.run(_body(repo_url, rounds=1))
    assert project["state"] == "completed", project["message"]

    # Execute: the nodes' data servers registered themselves and report what they hold
    def reported() -> list[dict[str, Any]]:
        nodes = manager.api("GET", "/nodes").json()
        assert [n["name"] for n in nodes] == ["node0", "node1", "node2"]
        assert all(n["reads"] for n in nodes), nodes
        return nodes

    nodes = eventually(reported, "3 simulated nodes reporting their reads", 30, retry_on=(
        AssertionError,))  # fmt: skip

    # Assert: one partition per node, read by its learner on this machine
    for number, node in enumerate(nodes):
        assert node["simulated"] and node["state"] == "ready" and node["cluster"] == "local"
        assert node["address"] == "127.0.0.1"
        assert node["data_server"] == manager.data_server(number)
        assert [t["tag"] for t in node["tags"]] == ["Admin:digits"]
        assert node["tags"][0]["rows"] > 500
        assert set(node["reads"]) == {"127.0.0.1"}
    assert sum(n["tags"][0]["rows"] for n in nodes) == 1797


def test_delete_during_training_stops_everything(manager: Manager, repo_url: str) -> None:
    # Prepare: a long project, caught while training
    project_id = manager.api("POST", "/projects", json=_body(repo_url, rounds=5000)).json()["id"]
    manager.wait_event(project_id, "round_completed", timeout=240)
    pgids = manager.project_pgids(project_id)
    assert len(pgids) == 4 and all(alive(p) for p in pgids)

    # Execute
    started = time.monotonic()
    response = manager.api("DELETE", f"/projects/{project_id}")

    # Assert
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 30
    assert manager.api("GET", f"/projects/{project_id}").json()["state"] == "cancelled"
    assert not [p for p in pgids if alive(p)]


def test_repo_without_model_manager_fails_before_anything_starts(
    manager: Manager, tmp_path: Path
) -> None:
    # Prepare
    repo = tmp_path / "broken"
    repo.mkdir()
    (repo / "requirements.txt").write_text("numpy\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run([*git, *args], cwd=repo, check=True)

    # Execute
    project_id = manager.api("POST", "/projects", json=_body(f"file://{repo}")).json()["id"]

    # Assert
    project = manager.wait_state(project_id, FINAL, timeout=120)
    assert project["state"] == "failed"
    assert "no model_manager.py" in project["message"] or "model_manager.py" in project["message"]
    assert project["services"] == []


def test_fedprox_on_a_repo_without_configure_round_fails_before_anything_starts(
    manager: Manager, repo_url: str
) -> None:
    # Prepare: FedProx on the sklearn example, whose ModelManager cannot take proximal_mu
    body = _body(repo_url)
    body["training_configuration"] |= {
        "strategy": "FedProx", "strategy_params": {"proximal_mu": 0.1},
    }  # fmt: skip

    # Execute
    project_id = manager.api("POST", "/projects", json=body).json()["id"]

    # Assert: failed while building, saying what to do, with no service ever deployed
    project = manager.wait_state(project_id, FINAL, timeout=120)
    assert project["state"] == "failed"
    assert "strategy FedProx needs ModelManager.configure_round(config)" in project["message"]
    assert "choose another strategy" in project["message"]
    assert project["services"] == []
    states = [e["type"] for e in manager.api("GET", f"/projects/{project_id}/events").json()
              if e["kind"] == "state"]  # fmt: skip
    assert states == ["pending", "building", "failed"]


def test_bad_requests_are_refused_with_the_reason(manager: Manager, repo_url: str) -> None:
    # A malformed body names the field
    body = _body(repo_url)
    body["training_configuration"]["training_rounds"] = 0
    response = manager.api("POST", "/projects", json=body)
    assert response.status_code == 422
    assert "training_rounds" in str(response.json()["detail"][0]["loc"])
    # A URL scheme the policy does not allow names the field
    response = manager.api("POST", "/projects", json=_body("http://git.example.org/r.git"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "ml_repo_url"]
    assert "scheme 'http' is not allowed" in response.json()["detail"][0]["msg"]
    # No token
    assert manager.api("GET", "/projects", headers={}).status_code == 401
    # Another customer's project is not found
    admin_project = manager.api(
        "POST", "/projects", json=_body("file:///nonexistent/flops-repo")
    ).json()["id"]
    token = manager.api("POST", "/tokens", json={"customer_id": "acme"}).json()["token"]
    other = {"Authorization": f"Bearer {token}"}
    assert manager.api("GET", f"/projects/{admin_project}", headers=other).status_code == 404
    assert manager.api("DELETE", f"/projects/{admin_project}", headers=other).status_code == 404
    # customerID must be the token's own
    assert manager.api("POST", "/projects", json=_body(repo_url), headers=other).status_code == 403


def test_an_error_in_fit_model_is_the_reason_the_project_gives(
    manager: Manager, tmp_path: Path
) -> None:
    # Prepare: sklearn-digits whose fit_model raises
    repo = tmp_path / "fit-raises"
    shutil.copytree(ROOT / "examples" / "sklearn-digits", repo)
    with (repo / "model_manager.py").open("a") as source:
        source.write(
            "\n\ndef _fit_raises(self):\n"
            "    raise ValueError('labels and features disagree on node data')\n\n\n"
            "ModelManager.fit_model = _fit_raises\n"
        )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run([*git, *args], cwd=repo, check=True)

    # Execute
    project = manager.run(_body(f"file://{repo}", rounds=2), timeout=180)

    # Assert: the learners' own words are in the reason, said once for all of them
    assert project["state"] == "failed"
    message = project["message"]
    assert message.startswith("training failed: round 1"), message
    assert (
        "learner0, learner1, learner2: ModelManager.fit_model() raised ValueError: "
        "labels and features disagree on node data (at model_manager.py:" in message
    ), message
    assert message.count("labels and features disagree") == 1, message
    assert not [p for p in manager.project_pgids(project_id=project["id"]) if alive(p)]


def test_a_restarted_manager_leaves_no_project_active(manager: Manager, repo_url: str) -> None:
    # Prepare: a long project in training
    project_id = manager.api("POST", "/projects", json=_body(repo_url, rounds=5000)).json()["id"]
    manager.wait_state(project_id, {"training"}, timeout=240)
    time.sleep(3)
    pgids = manager.project_pgids(project_id)

    # Execute: the manager dies without any chance to clean up, then comes back
    manager.kill()
    manager.start()

    # Assert
    project = manager.api("GET", f"/projects/{project_id}").json()
    assert project["state"] == "failed"
    assert "manager restarted" in project["message"]
    eventually(
        lambda: [p for p in pgids if alive(p)], f"no live process in the groups {pgids}", 30,
        until=lambda left: not left,
    )  # fmt: skip


def test_a_failure_names_what_the_learners_said(manager: Manager, repo_url: str) -> None:
    # Prepare: data tags nobody has
    body = _body(repo_url)
    body["training_configuration"] |= {"data_tags": ["nobody-has-this"], "connect_timeout_s": 10}

    # Execute
    project_id = manager.api("POST", "/projects", json=body).json()["id"]

    # Assert
    project = manager.wait_state(project_id, FINAL, timeout=180)
    assert project["state"] == "failed"
    assert "learners" in project["message"]
    assert "no training data" in project["message"]
    assert "nobody-has-this" in project["message"]
    assert not [p for p in manager.project_pgids(project_id) if alive(p)]
