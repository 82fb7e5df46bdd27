"""`/api/flops/nodes` and `/api/flops/node-tokens`: a node reports with its own node token only,
the admin sees everything, a customer the nodes and the tags it may name; node tokens are
shown once, at creation, and work nowhere but on their node's report."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from flops_core.api_tokens import hash_token
from flops_manager.db import Database, Node
from tests.flops_manager.api.conftest import ADMIN_TOKEN

NODES = "/api/flops/nodes"
NODE_TOKENS = "/api/flops/node-tokens"

REPORT: dict[str, Any] = {
    "cluster": "edge-a",
    "platform": "linux/arm64",
    "address": "10.0.0.2",
    "port": 11027,
    "tags": {"acme:digits": 600, "digits": 1797, "carol:digits": 500, "acme:wine": 0},
    "reads": {"10.0.0.2": 2},
    "version": "1.2.3",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def node_token(client: TestClient, admin: dict[str, str], node: str = "worker-a1") -> str:
    response = client.post(NODE_TOKENS, headers=admin, json={"node": node, "label": "rack 3"})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def customer_token(client: TestClient, admin: dict[str, str], customer: str = "acme") -> str:
    response = client.post("/api/flops/tokens", headers=admin, json={"customer_id": customer})
    return str(response.json()["token"])


def test_a_node_registers_and_the_admin_sees_everything(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    token = node_token(client, admin)
    # Execute
    reported = client.put(f"{NODES}/worker-a1", headers=bearer(token), json=REPORT)
    listing = client.get(NODES, headers=admin)
    # Assert
    assert reported.status_code == 200, reported.text
    assert listing.status_code == 200
    [node] = listing.json()
    assert node == reported.json()
    last_seen = datetime.fromisoformat(node.pop("last_seen"))
    assert abs(datetime.now(UTC) - last_seen) < timedelta(seconds=30)
    assert node == {
        "name": "worker-a1", "cluster": "edge-a", "platform": "linux/arm64", "state": "ready",
        "address": "10.0.0.2", "port": 11027, "data_server": "grpc://10.0.0.2:11027",
        "simulated": False, "version": "1.2.3",
        "tags": [{"tag": "acme:digits", "rows": 600}, {"tag": "acme:wine", "rows": 0},
                 {"tag": "carol:digits", "rows": 500}, {"tag": "digits", "rows": 1797}],
        "reads": {"10.0.0.2": 2},
    }  # fmt: skip


def test_a_customer_sees_its_own_and_shared_tags_by_the_names_it_writes(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    client.put(f"{NODES}/worker-a1", headers=bearer(node_token(client, admin)), json=REPORT)
    acme = customer_token(client, admin, "acme")
    # Execute
    response = client.get(f"{NODES}/", headers=bearer(acme))  # with a trailing slash too
    # Assert
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "worker-a1", "cluster": "edge-a", "platform": "linux/arm64",
            "state": "ready",
            "tags": [{"tag": "digits", "rows": 600}, {"tag": "shared:digits", "rows": 1797},
                     {"tag": "wine", "rows": 0}],
        }
    ]  # fmt: skip
    assert "carol" not in response.text and "10.0.0.2" not in response.text


def test_a_refresh_updates_the_node_and_silence_makes_it_stale(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    # Prepare
    token = node_token(client, admin)
    client.put(f"{NODES}/worker-a1", headers=bearer(token), json=REPORT)
    # Execute
    refreshed = client.put(
        f"{NODES}/worker-a1/", headers=bearer(token), json={**REPORT, "tags": {"wine": 7}}
    )
    with database.session() as session:
        long_ago = datetime.now(UTC) - timedelta(seconds=46)  # the default stale time is 45 s
        session.execute(update(Node).values(last_seen=long_ago))
    listing = client.get(NODES, headers=admin).json()
    # Assert
    assert refreshed.status_code == 200
    assert [(n["name"], n["state"], n["tags"]) for n in listing] == [
        ("worker-a1", "stale", [{"tag": "wine", "rows": 7}])
    ]


def test_a_node_token_reports_only_its_own_node(client: TestClient, admin: dict[str, str]) -> None:
    # Prepare
    token = node_token(client, admin, "worker-a1")
    # Execute
    response = client.put(f"{NODES}/worker-b1", headers=bearer(token), json=REPORT)
    # Assert
    assert response.status_code == 403
    assert response.json() == {"detail": "this node token belongs to node worker-a1, not worker-b1"}
    assert client.get(NODES, headers=admin).json() == []


def test_revoked_node_tokens_api_tokens_and_none_cannot_report(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    token = node_token(client, admin)
    [listed] = client.get(NODE_TOKENS, headers=admin).json()
    revoked = client.delete(f"{NODE_TOKENS}/{listed['id']}", headers=admin)
    acme = customer_token(client, admin)
    path = f"{NODES}/worker-a1"
    # Execute
    answers = {
        "revoked": client.put(path, headers=bearer(token), json=REPORT),
        "admin token": client.put(path, headers=admin, json=REPORT),
        "customer token": client.put(path, headers=bearer(acme), json=REPORT),
        "no token": client.put(path, json=REPORT),
    }
    # Assert
    assert revoked.status_code == 204
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 401)
    assert "invalid or revoked node token" in answers["admin token"].json()["detail"]
    assert "missing node token" in answers["no token"].json()["detail"]
    assert answers["revoked"].headers["WWW-Authenticate"] == "Bearer"
    assert client.get(NODES, headers=admin).json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/flops/projects"),
        ("GET", "/api/flops/whoami"),
        ("GET", NODES),
        ("GET", NODE_TOKENS),
        ("POST", NODE_TOKENS),
        ("GET", "/api/flops/tokens"),
        ("GET", "/api/flops/mocks"),
    ],
)
def test_a_node_token_works_on_no_other_route(
    client: TestClient, admin: dict[str, str], method: str, path: str
) -> None:
    # Prepare
    token = node_token(client, admin)
    # Execute
    response = client.request(method, path, headers=bearer(token), json={"node": "x"})
    # Assert
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked API token"}


def test_node_tokens_are_for_the_admin_only(client: TestClient, admin: dict[str, str]) -> None:
    # Prepare
    acme = bearer(customer_token(client, admin))
    # Execute
    answers = [
        client.post(NODE_TOKENS, headers=acme, json={"node": "worker-a1"}),
        client.get(NODE_TOKENS, headers=acme),
        client.delete(f"{NODE_TOKENS}/1", headers=acme),
    ]
    # Assert
    assert [a.status_code for a in answers] == [403, 403, 403]


def test_a_node_token_is_shown_once_and_listed_without_it(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    created = client.post(NODE_TOKENS + "/", headers=admin, json={"node": "worker-a1"})
    token = created.json()["token"]
    # Execute
    reported = client.put(f"{NODES}/worker-a1", headers=bearer(token), json=REPORT)
    answers = [
        reported,
        client.get(NODES, headers=admin),
        client.get(NODE_TOKENS, headers=admin),
        client.get(NODE_TOKENS + "/", headers=admin, params={"include_revoked": "true"}),
    ]
    # Assert
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "node", "label", "token", "created_at"}
    assert (body["node"], body["label"]) == ("worker-a1", "")
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    [listed] = answers[2].json()
    assert set(listed) == {"id", "node", "label", "simulated", "created_at", "revoked_at"}
    assert (listed["id"], listed["simulated"], listed["revoked_at"]) == (body["id"], False, None)
    for answer in answers:
        assert answer.status_code == 200
        assert token not in answer.text
        assert hash_token(token) not in answer.text


def test_revoking_twice_is_fine_and_unknown_ids_are_404(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    created = client.post(NODE_TOKENS, headers=admin, json={"node": "worker-a1"}).json()
    # Execute
    first = client.delete(f"{NODE_TOKENS}/{created['id']}", headers=admin)
    again = client.delete(f"{NODE_TOKENS}/{created['id']}/", headers=admin)
    unknown = client.delete(f"{NODE_TOKENS}/9999", headers=admin)
    everything = client.get(NODE_TOKENS, headers=admin, params={"include_revoked": "true"})
    # Assert
    assert (first.status_code, again.status_code) == (204, 204)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "node token 9999 not found"}
    assert everything.json()[0]["revoked_at"] is not None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"node": "a/b"}, ["body", "node"]),
        ({"node": "-a"}, ["body", "node"]),
        ({"node": "a" * 64}, ["body", "node"]),
        ({"node": "a", "customer_id": "x"}, ["body", "customer_id"]),
    ],
)
def test_a_node_name_outside_the_pattern_is_a_422(
    client: TestClient, admin: dict[str, str], body: dict[str, Any], loc: list[str]
) -> None:
    response = client.post(NODE_TOKENS, headers=admin, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_a_report_outside_its_schema_is_a_422_naming_the_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Prepare
    token = node_token(client, admin)
    # Execute
    response = client.put(
        f"{NODES}/worker-a1", headers=bearer(token), json={**REPORT, "address": "10.0.0.2:1"}
    )
    # Assert
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "address"]
    assert client.get(NODES, headers=admin).json() == []


def test_node_tokens_never_reach_the_log(
    client: TestClient,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    monkeypatch.setattr(logging.getLogger("flops"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    # Execute
    token = node_token(client, admin, "worker-a1")
    other = node_token(client, admin, "worker-b1")
    client.put(f"{NODES}/worker-a1", headers=bearer(token), json=REPORT)
    client.put(f"{NODES}/worker-a1", headers=bearer(other), json=REPORT)
    client.get("/api/flops/projects", headers=bearer(token))
    [first, _] = client.get(NODE_TOKENS, headers=admin).json()
    client.delete(f"{NODE_TOKENS}/{first['id']}", headers=admin)
    client.put(f"{NODES}/worker-a1", headers=bearer(token), json=REPORT)
    # Assert
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "worker-a1" in logged  # the log does tell what happened
    for secret in (token, other, ADMIN_TOKEN):
        assert secret not in logged
        assert hash_token(secret) not in logged
