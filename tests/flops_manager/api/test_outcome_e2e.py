"""A real manager records what a project's services report, all of it, and leaks no token.

The manager's services reach it through a small forwarding proxy (`FLOPS_PUBLIC_URL`), which
sees every callback as the manager does: it can lose a project's outcome event on purpose, as
a network fault would, and it learns the project's callback token from the requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port
from tests.flops_manager.api.conftest import ADMIN_TOKEN
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = pytest.mark.e2e


class CallbackProxy:
    """Forward services' callbacks to the manager; lose the outcome of chosen projects.

    A request carrying the aggregator's `succeeded` event of a project in `lose_outcome_of`
    is answered 404 (as a manager that no longer knows the project would) and not forwarded.
    """

    def __init__(self, manager_url: str) -> None:
        self.manager_url = manager_url
        self.lose_outcome_of: set[str] = set()
        self.lost: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                authorization = self.headers.get("Authorization", "")
                proxy.tokens.add(authorization.removeprefix("Bearer ").strip())
                payload = json.loads(body)
                events = payload if isinstance(payload, list) else [payload]
                lost = [
                    e for e in events if e.get("type") == "succeeded"
                    and e.get("source") == "aggregator"
                    and e.get("project_id") in proxy.lose_outcome_of
                ]  # fmt: skip
                if lost:
                    proxy.lost.extend(lost)
                    status = 404
                else:
                    status = httpx.post(
                        f"{proxy.manager_url}{self.path}", content=body, timeout=60,
                        headers={"Authorization": authorization,
                                 "Content-Type": "application/json"},
                    ).status_code  # fmt: skip
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ManagerProcess, CallbackProxy]]:
    workdir = tmp_path_factory.mktemp("manager")
    port = free_port()
    proxy = CallbackProxy(f"http://127.0.0.1:{port}")
    manager = ManagerProcess(workdir, FLOPS_PORT=str(port), FLOPS_PUBLIC_URL=proxy.url)
    try:
        manager.start()
        yield manager, proxy
    finally:
        manager.stop()
        proxy.close()


def _body(repo_url: str, customer: str, rounds: int, tag: str) -> dict[str, Any]:
    return {
        "customerID": customer, "ml_repo_url": repo_url, "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": [tag], "training_rounds": rounds, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3,
        },
    }  # fmt: skip


def _log_files(workdir: Path) -> list[Path]:
    """The manager's log and every service's log (MLflow, data servers, aggregator, learners)."""
    return sorted(p for p in workdir.rglob("*.log") if p.is_file())


def test_many_rounds_all_arrive_and_no_log_holds_a_token(
    proxied: tuple[ManagerProcess, CallbackProxy], repo_url: str
) -> None:
    # Prepare: a customer with its own token and its own data
    manager, proxy = proxied
    created = manager.api("POST", "/tokens", json={"customer_id": "acme"})
    assert created.status_code == 201, created.text
    customer_token = created.json()["token"]
    as_customer = {"Authorization": f"Bearer {customer_token}"}
    mock = {"dataset_name": "digits", "number_of_partitions": 3, "data_tag": "digits"}
    pushed = manager.api(
        "POST", "/mocks", headers=as_customer,
        json={"customerID": "acme", "mock_data_configuration": mock},
    )  # fmt: skip
    assert pushed.status_code == 201, pushed.text
    rounds = 300

    # Execute
    started = time.monotonic()
    response = manager.api(
        "POST", "/projects", headers=as_customer, json=_body(repo_url, "acme", rounds, "digits")
    )
    assert response.status_code == 201, response.text
    project_id = response.json()["id"]
    project = manager.wait_state(project_id, FINAL, timeout=600)
    elapsed = time.monotonic() - started

    # Assert: completed, with every round's event recorded once and in order
    assert project["state"] == "completed", project["message"]
    events = manager.api("GET", f"/projects/{project_id}/events").json()
    reported = [e["data"]["round"] for e in events if e["type"] == "round_completed"]
    print(f"\n{rounds} rounds: {len(reported)} round events recorded, project {elapsed:.1f} s")
    assert reported == list(range(1, rounds + 1))
    # Assert: no log of the project or the manager holds a token, even cut short
    callback_tokens = {t for t in proxy.tokens if t and t != customer_token}
    assert callback_tokens, "no callback reached the proxy"
    secrets = {*callback_tokens, customer_token, ADMIN_TOKEN}
    logs = _log_files(manager.workdir)
    assert any(p.name == "manager.log" for p in logs)
    for log in logs:
        text = log.read_text(errors="replace")
        leaked = [s[:4] + "…" for s in secrets if s[:14] in text]
        assert not leaked, f"{log} holds a token: {leaked}"
    aggregator_logs = [
        manager.workdir / "data" / "services" / s["service_id"] / "service.log"
        for s in project["services"] if s["role"] == "aggregator"
    ]  # fmt: skip
    assert aggregator_logs and all(p.is_file() for p in aggregator_logs)
    for log in aggregator_logs:
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text()


def test_a_lost_outcome_is_confirmed_from_mlflow(
    proxied: tuple[ManagerProcess, CallbackProxy], repo_url: str
) -> None:
    # Prepare
    manager, proxy = proxied
    manager.push_mock_data(partitions=3)
    body = _body(repo_url, "Admin", 3, "digits")

    # Execute: the aggregator's `succeeded` never reaches the manager
    created = manager.api("POST", "/projects", json=body)
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    proxy.lose_outcome_of.add(project_id)
    project = manager.wait_state(project_id, FINAL, timeout=300)

    # Assert: completed, saying why, with the model MLflow registered
    assert [e["project_id"] for e in proxy.lost] == [project_id]
    assert project["state"] == "completed", project["message"]
    assert "outcome event was lost" in project["message"]
    assert "MLflow confirms" in project["message"]
    training = project["result"]["training"]
    client = MlflowClient(manager.tracking_url)
    assert client.get_run(training["mlflow_run_id"]).info.status == "FINISHED"
    champion = client.get_model_version_by_alias(f"flops-{project_id}", "champion")
    assert training["model"]["version"] == champion.version
    types = [e["type"] for e in manager.api("GET", f"/projects/{project_id}/events").json()]
    assert "outcome_confirmed" in types and "succeeded" not in types
