"""Token management: create (shown once), list (never shown), revoke, validation, storage."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flops_core.api_tokens import hash_token

TOKENS = "/api/flops/tokens"


def test_create_returns_the_token_once(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        TOKENS, headers=admin, json={"customer_id": "acme", "label": "laptop of Ada"}
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "customer_id", "label", "is_admin", "created_at", "token"}
    assert body["customer_id"] == "acme"
    assert body["label"] == "laptop of Ada"
    assert body["is_admin"] is False
    assert body["token"].startswith("flops_")
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None


def test_list_shows_neither_tokens_nor_hashes(client: TestClient, admin: dict[str, str]) -> None:
    token = client.post(TOKENS, headers=admin, json={"customer_id": "acme"}).json()["token"]

    response = client.get(TOKENS, headers=admin)

    assert response.status_code == 200
    [listed] = response.json()
    assert set(listed) == {"id", "customer_id", "label", "is_admin", "created_at", "revoked_at"}
    assert listed["revoked_at"] is None
    assert datetime.fromisoformat(listed["created_at"]).tzinfo is not None  # UTC, also from SQLite
    assert token not in response.text
    assert hash_token(token) not in response.text


def test_revoked_tokens_are_listed_on_request(client: TestClient, admin: dict[str, str]) -> None:
    first = client.post(TOKENS, headers=admin, json={"customer_id": "acme"}).json()
    client.post(TOKENS, headers=admin, json={"customer_id": "beta"})
    client.delete(f"{TOKENS}/{first['id']}", headers=admin)

    active = client.get(TOKENS, headers=admin).json()
    everything = client.get(TOKENS, headers=admin, params={"include_revoked": "true"}).json()

    assert [t["customer_id"] for t in active] == ["beta"]
    assert [t["customer_id"] for t in everything] == ["acme", "beta"]
    assert everything[0]["revoked_at"] is not None


def test_revoking_twice_is_fine_and_unknown_ids_are_404(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = client.post(TOKENS, headers=admin, json={"customer_id": "acme"}).json()

    first = client.delete(f"{TOKENS}/{created['id']}", headers=admin)
    again = client.delete(f"{TOKENS}/{created['id']}", headers=admin)
    unknown = client.delete(f"{TOKENS}/9999", headers=admin)

    assert (first.status_code, again.status_code) == (204, 204)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "API token 9999 not found"}


def test_tokens_are_stored_hashed_only(
    client: TestClient, admin: dict[str, str], tmp_path: Path
) -> None:
    token = client.post(TOKENS, headers=admin, json={"customer_id": "acme"}).json()["token"]

    raw = b"".join(path.read_bytes() for path in tmp_path.glob("flops.db*"))  # with the WAL

    assert hash_token(token).encode() in raw
    assert token.encode() not in raw


def test_bad_customer_id_is_422_naming_the_field(client: TestClient, admin: dict[str, str]) -> None:
    for bad in ("has space", "-leading-dash", "", "x" * 129, "semi;colon", "admin"):
        response = client.post(TOKENS, headers=admin, json={"customer_id": bad})

        assert response.status_code == 422, bad
        body = response.json()
        [problem] = body["detail"]
        assert problem["loc"] == ["body", "customer_id"]
        assert problem["msg"] and not problem["msg"].startswith("Value error")
        assert "input" not in problem
        assert body["message"].startswith("body.customer_id: ")


def test_good_customer_ids_are_accepted(client: TestClient, admin: dict[str, str]) -> None:
    for good in ("a", "acme-lab", "ada@example.org", "team_1.eu", "x" * 128):
        response = client.post(TOKENS, headers=admin, json={"customer_id": good})

        assert response.status_code == 201, (good, response.text)


def test_unknown_fields_and_missing_customer_are_422(
    client: TestClient, admin: dict[str, str]
) -> None:
    unknown = client.post(TOKENS, headers=admin, json={"customer_id": "a", "admin": True})
    missing = client.post(TOKENS, headers=admin, json={"label": "x"})

    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "admin"]
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "customer_id"]


@pytest.mark.parametrize("not_a_boolean", [0, 1, "true", "false", "yes", None, [True]])
def test_is_admin_must_be_a_json_boolean(
    client: TestClient, admin: dict[str, str], not_a_boolean: Any
) -> None:
    response = client.post(
        TOKENS, headers=admin, json={"customer_id": "acme", "is_admin": not_a_boolean}
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "is_admin"]
    assert client.get(TOKENS, headers=admin).json() == []  # nothing was created


def test_is_admin_true_and_false_work(client: TestClient, admin: dict[str, str]) -> None:
    for flag in (True, False):
        response = client.post(TOKENS, headers=admin, json={"customer_id": "a", "is_admin": flag})

        assert response.status_code == 201
        assert response.json()["is_admin"] is flag


def test_a_token_id_beyond_64_bits_is_422_not_a_server_error(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = client.delete(f"{TOKENS}/{10**30}", headers=admin)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "token_id"]
