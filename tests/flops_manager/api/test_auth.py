"""Authentication: bearer (or bare) tokens, the admin token, customer tokens, revocation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.flops_manager.api.conftest import ADMIN_TOKEN

WHOAMI = "/api/flops/whoami"
TOKENS = "/api/flops/tokens"


def _customer_token(client: TestClient, admin: dict[str, str], customer_id: str = "acme") -> str:
    response = client.post(TOKENS, headers=admin, json={"customer_id": customer_id})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_no_token_is_401_with_www_authenticate(client: TestClient) -> None:
    response = client.get(WHOAMI)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]


def test_wrong_token_is_401_and_not_echoed(client: TestClient) -> None:
    wrong = "flops_not-a-real-token-but-looks-like-one"

    for header in (f"Bearer {wrong}", wrong):
        response = client.get(WHOAMI, headers={"Authorization": header})

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert set(response.json()) == {"detail"}
        assert wrong not in response.text


def test_other_schemes_are_401(client: TestClient) -> None:
    response = client.get(WHOAMI, headers={"Authorization": f"Basic {ADMIN_TOKEN}"})

    assert response.status_code == 401


def test_admin_token_is_admin(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(WHOAMI, headers=admin)

    assert response.status_code == 200
    assert response.json() == {"customer_id": "Admin", "is_admin": True}


def test_bare_token_without_bearer_prefix_is_accepted(client: TestClient) -> None:
    # The original FLOps CLI sends the token as the whole header value.
    response = client.get(WHOAMI, headers={"Authorization": ADMIN_TOKEN})

    assert response.status_code == 200
    assert response.json()["is_admin"] is True


def test_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    response = client.get(WHOAMI, headers={"Authorization": f"bearer {ADMIN_TOKEN}"})

    assert response.status_code == 200


def test_customer_token_from_admin_works(client: TestClient, admin: dict[str, str]) -> None:
    token = _customer_token(client, admin)

    response = client.get(WHOAMI, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json() == {"customer_id": "acme", "is_admin": False}


def test_customer_cannot_manage_tokens(client: TestClient, admin: dict[str, str]) -> None:
    customer = {"Authorization": f"Bearer {_customer_token(client, admin)}"}

    created = client.post(TOKENS, headers=customer, json={"customer_id": "other"})
    listed = client.get(TOKENS, headers=customer)
    revoked = client.delete(f"{TOKENS}/1", headers=customer)

    assert (created.status_code, listed.status_code, revoked.status_code) == (403, 403, 403)
    assert created.json() == {"detail": "this needs an admin token"}


def test_database_admin_token_can_manage_tokens(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(TOKENS, headers=admin, json={"customer_id": "ops", "is_admin": True})
    ops = {"Authorization": f"Bearer {response.json()['token']}"}

    created = client.post(TOKENS, headers=ops, json={"customer_id": "acme"})

    assert client.get(WHOAMI, headers=ops).json() == {"customer_id": "ops", "is_admin": True}
    assert created.status_code == 201


def test_revoked_token_is_401(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post(TOKENS, headers=admin, json={"customer_id": "acme"}).json()
    customer = {"Authorization": f"Bearer {created['token']}"}
    assert client.get(WHOAMI, headers=customer).status_code == 200

    response = client.delete(f"{TOKENS}/{created['id']}", headers=admin)

    assert response.status_code == 204
    after = client.get(WHOAMI, headers=customer)
    assert after.status_code == 401
    assert after.json() == {"detail": "invalid or revoked API token"}


def test_every_response_has_a_request_id(client: TestClient, admin: dict[str, str]) -> None:
    ok = client.get(WHOAMI, headers=admin)
    denied = client.get(WHOAMI)

    assert ok.headers["X-Request-ID"] != denied.headers["X-Request-ID"]
