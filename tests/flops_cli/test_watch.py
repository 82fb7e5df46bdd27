"""`flops_cli.watch`: what a watched project shows, how it ends, and how events are followed."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from rich.console import Console

from flops_cli.api_types import Event
from flops_cli.client import ManagerClient, ManagerError
from flops_cli.watch import WatchView, follow_events, watch_project
from tests.flops_cli.conftest import FakeManager, event, sse

STREAM = "/api/flops/projects/p1/events/stream"
EVENTS = "/api/flops/projects/p1/events"


def recording_console() -> tuple[Console, io.StringIO]:
    output = io.StringIO()
    return Console(file=output, width=120, force_terminal=False, color_system=None), output


def rounds_of(accuracies: list[float]) -> list[dict[str, Any]]:
    total = len(accuracies)
    return [
        event(10 + i, "event", "round_completed", round=i + 1, rounds=total, duration_s=0.25,
              metrics={"accuracy": accuracy, "loss": 1 - accuracy})
        for i, accuracy in enumerate(accuracies)
    ]  # fmt: skip


COMPLETED = [
    event(1, "state", "pending", "queued"),
    event(2, "state", "building", "building the environment"),
    event(3, "event", "build_progress", "installing scikit-learn"),
    event(4, "event", "dependency_override", "numpy==1.26 replaced by numpy==2.4.6"),
    event(5, "state", "training", "3 learners deployed"),
    *rounds_of([0.81, 0.9, 0.95]),
    event(20, "state", "post_training", "registering the model"),
    event(21, "state", "completed", "model flops-p1 version 1 registered"),
]


def feed(events: list[dict[str, Any]], rounds: int | None = 3) -> tuple[WatchView, str, int]:
    console, output = recording_console()
    handled = 0
    with WatchView(console, "p1", rounds=rounds) as view:
        for item in events:
            handled += 1
            if view.handle(Event(**item)):  # type: ignore[typeddict-item]
                break
    return view, output.getvalue(), handled


def test_a_completed_project_exits_0_with_each_round_shown() -> None:
    # Execute
    view, text, _ = feed(COMPLETED)
    # Assert
    assert view.outcome.state == "completed"
    assert view.outcome.exit_code == 0
    assert view.outcome.rounds_completed == 3
    assert view.outcome.last_metrics["accuracy"] == 0.95
    assert "round 1/3  accuracy 0.810  loss 0.190  (0.25 s)" in text
    assert "round 3/3  accuracy 0.950" in text
    assert "dependency_override" in text and "numpy==1.26 replaced" in text


@pytest.mark.parametrize(
    ("final", "reason"),
    [("failed", "learner-1: no data under tag 'digits'"), ("cancelled", "cancelled by Admin")],
)
def test_a_failed_or_cancelled_project_exits_1_with_its_reason(final: str, reason: str) -> None:
    events = [
        event(1, "state", "training"),
        *rounds_of([0.5])[:1],
        event(12, "event", "learner_failed", "learner-1 exited with status 1"),
        event(13, "state", final, reason),
        event(14, "event", "late", "never shown"),
    ]
    view, text, handled = feed(events, rounds=None)
    assert view.outcome.state == final
    assert view.outcome.reason == reason
    assert view.outcome.exit_code == 1
    assert handled == 4  # nothing after the final state
    assert "round 1/1" in text and "learner_failed" in text


def test_rounds_are_learnt_from_the_events_when_not_configured() -> None:
    view, text, _ = feed([event(1, "state", "training"), *rounds_of([0.7, 0.8])], rounds=None)
    assert view.outcome.state == "training"
    assert view.outcome.exit_code == 1  # not completed (yet)
    assert "round 2/2  accuracy 0.800" in text


def test_following_resumes_after_a_dropped_stream_without_repeating_events() -> None:
    # Prepare: the first connection drops after two events, the second replays from the start.
    calls = {"n": 0}

    def stream(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(200, content=sse(COMPLETED[:2]))
        return httpx.Response(200, content=sse(COMPLETED))

    manager = FakeManager({("GET", STREAM): stream})
    # Execute
    with ManagerClient("http://m.test", "t", transport=manager.transport) as client:
        ids = []
        for item in follow_events(client, "p1", poll_interval=0):
            ids.append(item["id"])
            if item["type"] == "completed":
                break
    # Assert
    assert ids == [e["id"] for e in COMPLETED]
    assert calls["n"] == 2


def test_following_polls_where_there_is_no_stream() -> None:
    def events(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after", "0"))
        return httpx.Response(200, json=[e for e in COMPLETED if e["id"] > after][:3])

    manager = FakeManager({("GET", EVENTS): events})
    with ManagerClient("http://m.test", "t", transport=manager.transport) as client:
        seen = []
        for item in follow_events(client, "p1", poll_interval=0):
            seen.append(item["id"])
            if item["type"] == "completed":
                break
    assert seen == [e["id"] for e in COMPLETED]


def test_following_stops_on_a_refused_token() -> None:
    manager = FakeManager({("GET", STREAM): httpx.Response(401, json={"detail": "invalid"})})
    with (
        ManagerClient("http://m.test", "t", transport=manager.transport) as client,
        pytest.raises(ManagerError, match="refused the token"),
    ):
        next(follow_events(client, "p1"))


def test_watch_project_prints_the_summary_of_the_finished_project() -> None:
    project: dict[str, Any] = {
        "id": "p1", "customer_id": "Admin", "state": "completed", "message": "done",
        "repo_url": "file:///tmp/repo", "commit": "abc", "created_at": "2026-11-22T10:00:00+00:00",
        "updated_at": "2026-11-22T10:00:42+00:00",
        "config": {"training_configuration": {"training_rounds": 3}},
        "result": {
            "tracking_url": "http://127.0.0.1:5000",
            "training": {"best_round": 3, "metrics": {"accuracy": 0.95, "loss": 0.05},
                         "model": {"name": "flops-p1", "version": "1", "alias": "champion"}},
        },
    }  # fmt: skip
    manager = FakeManager(
        {
            ("GET", "/api/flops/projects/p1"): httpx.Response(200, json=project),
            ("GET", STREAM): httpx.Response(200, content=sse(COMPLETED)),
        }
    )
    console, output = recording_console()
    with ManagerClient("http://m.test", "t", transport=manager.transport) as client:
        outcome = watch_project(client, "p1", console)
    text = output.getvalue()
    assert outcome.exit_code == 0
    assert "✓ Project p1 completed in 42 s" in text
    assert "Best round 3: accuracy 0.9500, loss 0.0500" in text
    assert "Registered model: flops-p1 version 1 (@champion)" in text
    assert "MLflow: http://127.0.0.1:5000" in text


def test_a_project_final_without_its_state_event_still_ends_the_watch() -> None:
    # Prepare: the stream ends without a final state event; the project itself failed.
    project = {
        "id": "p1", "customer_id": "Admin", "state": "failed", "message": "manager restarted",
        "repo_url": "r", "commit": None, "created_at": "", "updated_at": "",
    }  # fmt: skip
    manager = FakeManager(
        {
            ("GET", "/api/flops/projects/p1"): httpx.Response(200, json=project),
            ("GET", STREAM): httpx.Response(200, content=sse(COMPLETED[:5])),
            ("GET", EVENTS): httpx.Response(200, json=COMPLETED[:5]),
        }
    )
    console, output = recording_console()
    # Execute
    with ManagerClient("http://m.test", "t", transport=manager.transport) as client:
        outcome = watch_project(client, "p1", console, poll_interval=0)
    # Assert
    assert outcome.state == "failed"
    assert outcome.exit_code == 1
    assert "Project p1 failed: manager restarted" in output.getvalue()
