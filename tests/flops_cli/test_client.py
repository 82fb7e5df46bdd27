"""`ManagerClient`: requests it sends, and how it turns failures into one `ManagerError`."""

from __future__ import annotations

import httpx
import pytest

from flops_cli.client import ManagerClient, ManagerError
from tests.conftest import free_port
from tests.flops_cli.conftest import FakeManager, event, sse

VALIDATION_BODY = {
    "detail": [
        {
            "loc": ["body", "training_configuration", "training_rounds"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ],
    "message": "body.training_configuration.training_rounds: Input should be greater than ...",
}


def client_of(manager: FakeManager, token: str | None = "secret-token") -> ManagerClient:
    return ManagerClient("http://manager.test", token, transport=manager.transport)


def test_422_names_the_field_without_the_body_prefix() -> None:
    # Prepare
    manager = FakeManager(
        {("POST", "/api/flops/projects"): httpx.Response(422, json=VALIDATION_BODY)}
    )
    # Execute
    with pytest.raises(ManagerError) as caught, client_of(manager) as client:
        client.create_project({"ml_repo_url": "https://example.org/repo.git"})
    # Assert
    assert str(caught.value) == (
        "422: training_configuration.training_rounds: Input should be greater than or equal to 1"
    )
    assert caught.value.status_code == 422


def test_401_advises_how_to_get_a_token_and_never_shows_it() -> None:
    manager = FakeManager(
        {
            ("GET", "/api/flops/projects"): httpx.Response(
                401, json={"detail": "invalid or revoked API token"}
            )
        }
    )
    with pytest.raises(ManagerError) as caught, client_of(manager) as client:
        client.list_projects()
    message = str(caught.value)
    assert message.startswith("the manager refused the token (invalid or revoked API token)")
    assert "FLOPS_TOKEN" in message and "flops server" in message
    assert "secret-token" not in message
    assert manager.requests[0].headers["Authorization"] == "Bearer secret-token"


def test_connection_refused_says_to_start_a_manager() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ManagerError) as caught, ManagerClient(url, "t") as client:
        client.whoami()
    assert str(caught.value) == f"no manager at {url}: start one with `flops server`"
    assert caught.value.status_code is None


def test_other_errors_carry_the_servers_detail_and_request_id() -> None:
    manager = FakeManager(
        {
            ("GET", "/api/flops/projects/p1"): httpx.Response(
                404, json={"detail": "project p1 not found"}
            ),
            ("GET", "/api/flops/tracking"): httpx.Response(
                500, json={"detail": "internal server error", "request_id": "abc123"}
            ),
            ("GET", "/api/flops/whoami"): httpx.Response(502, text="<html>bad gateway</html>"),
        }
    )
    with client_of(manager) as client:
        with pytest.raises(ManagerError, match=r"^404: project p1 not found$"):
            client.get_project("p1")
        with pytest.raises(
            ManagerError, match=r"^500: internal server error \(request id abc123\)$"
        ):
            client.tracking()
        with pytest.raises(ManagerError, match=r"^502: Bad Gateway$"):
            client.whoami()


def test_a_degraded_health_is_an_answer() -> None:
    body = {"status": "degraded", "components": {"mlflow": "not answering"}}
    manager = FakeManager({("GET", "/api/flops/health"): httpx.Response(503, json=body)})
    with client_of(manager, token=None) as client:
        assert client.health()["status"] == "degraded"
    assert "Authorization" not in manager.requests[0].headers


def test_mock_data_sends_the_flops_body() -> None:
    manager = FakeManager(
        {
            ("POST", "/api/flops/mocks"): httpx.Response(
                201, json={"data_tag": "d", "partitions": []}
            )
        }
    )
    with client_of(manager) as client:
        client.create_mock_data(dataset="iris", partitions=2, tag="d", customer_id="acme")
    assert manager.bodies("/api/flops/mocks") == [
        {
            "customerID": "acme",
            "mock_data_configuration": {
                "dataset_name": "iris",
                "number_of_partitions": 2,
                "data_tag": "d",
            },
        }
    ]


def test_event_stream_yields_each_event_and_skips_comments() -> None:
    events = [event(1, "state", "pending"), event(2, "state", "completed", "done")]
    body = b": keep-alive\n\n" + sse(events)
    manager = FakeManager(
        {
            ("GET", "/api/flops/projects/p1/events/stream"): httpx.Response(
                200, content=body, headers={"content-type": "text/event-stream"}
            )
        }
    )
    with client_of(manager) as client:
        received = list(client.stream_events("p1", after=7))
    assert received == events
    assert manager.requests[0].headers["Last-Event-ID"] == "7"


def test_event_stream_errors_are_translated() -> None:
    manager = FakeManager(
        {
            ("GET", "/api/flops/projects/p1/events/stream"): httpx.Response(
                404, json={"detail": "no p1"}
            )
        }
    )
    with pytest.raises(ManagerError, match=r"^404: no p1$"), client_of(manager) as client:
        list(client.stream_events("p1"))


def test_list_asks_for_a_page_and_reads_the_total() -> None:
    summary = {"id": "p1", "customer_id": "acme", "state": "training", "message": "",
               "repo_url": "https://example.org/r.git", "commit": None,
               "created_at": "2026-12-01T00:00:00+00:00",
               "updated_at": "2026-12-01T00:00:00+00:00"}  # fmt: skip
    manager = FakeManager(
        {("GET", "/api/flops/projects"): httpx.Response(
            200, json=[summary], headers={"X-Total-Count": "120"})}
    )  # fmt: skip

    with client_of(manager) as client:
        projects, total = client.list_projects(states=["training", "pending"], limit=10)

    assert projects == [summary]
    assert total == 120
    sent = manager.requests[0].url.params
    assert sent.get_list("state") == ["training", "pending"]
    assert (sent["limit"], sent["offset"]) == ("10", "0")
