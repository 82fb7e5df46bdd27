"""Events reach the receiver in order, survive a receiver hiccup, and never block the caller."""

from __future__ import annotations

import json
import time

import httpx

from flops_core.events import EventReporter, EventType
from tests.event_receiver import EventReceiver


def _reporter(handler: httpx.MockTransport, attempts: int = 5) -> EventReporter:
    return EventReporter(
        project_id="p1",
        source="aggregator",
        callback_url="http://manager.invalid/events",
        max_attempts=attempts,
        transport=handler,
    )


def test_events_arrive_in_order_with_the_documented_fields() -> None:
    # Prepare
    received: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        received.extend(body if isinstance(body, list) else [body])
        return httpx.Response(204)

    reporter = _reporter(httpx.MockTransport(handle))

    # Execute
    reporter.report(EventType.STARTED, rounds=2)
    reporter.report(EventType.ROUND_COMPLETED, round=1, metrics={"accuracy": 0.5})
    reporter.close()

    # Assert
    assert [e["type"] for e in received] == ["started", "round_completed"]
    assert received[1]["project_id"] == "p1"
    assert received[1]["source"] == "aggregator"
    assert received[1]["data"] == {"round": 1, "metrics": {"accuracy": 0.5}}
    assert "timestamp" in received[0]


def test_a_failing_receiver_is_retried() -> None:
    # Prepare
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200)])
    reporter = _reporter(httpx.MockTransport(lambda request: next(answers)))

    # Execute
    reporter.report(EventType.FAILED, reason="x")
    reporter.close()

    # Assert
    assert [e.type for e in reporter.delivered] == [EventType.FAILED]


def test_an_unreachable_receiver_drops_the_event_without_raising() -> None:
    # Prepare
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    reporter = EventReporter(
        project_id="p1", source="aggregator", callback_url="http://manager.invalid/events",
        max_attempts=2, outcome_timeout=1.0, transport=httpx.MockTransport(refuse),
    )  # fmt: skip

    # Execute
    reporter.report(EventType.ROUND_COMPLETED, round=1)
    reporter.report(EventType.SUCCEEDED)
    reporter.close()

    # Assert
    assert reporter.delivered == []


def test_without_a_callback_url_events_are_only_logged() -> None:
    reporter = EventReporter(project_id="p1", source="aggregator", callback_url=None)
    event = reporter.report(EventType.STARTED)
    reporter.close()
    assert event.type is EventType.STARTED
    assert reporter.delivered == []


def test_the_callback_token_is_sent_as_a_bearer_header() -> None:
    # Prepare
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(204)

    reporter = EventReporter(
        project_id="p1",
        source="aggregator",
        callback_url="http://manager.invalid/events",
        callback_token="cb-secret",
        transport=httpx.MockTransport(handle),
    )

    # Execute
    reporter.report(EventType.STARTED)
    reporter.close()

    # Assert
    assert seen == ["Bearer cb-secret"]


def _rounds(reporter: EventReporter, count: int) -> None:
    for n in range(1, count + 1):
        reporter.report(EventType.ROUND_COMPLETED, round=n, rounds=count)


def test_a_slow_receiver_gets_every_event_in_order_in_few_requests() -> None:
    # Prepare: 0.2 s a request; one request per event would need 100 s for this backlog
    receiver = EventReceiver(delay_s=0.2)
    reporter = EventReporter(project_id="p1", source="aggregator", callback_url=receiver.url)

    # Execute
    _rounds(reporter, 500)
    reporter.report(EventType.SUCCEEDED, best_round=500)
    reporter.close(timeout=5)
    receiver.close()

    # Assert
    assert [e["data"]["round"] for e in receiver.of_type("round_completed")] == list(range(1, 501))
    assert [e["data"] for e in receiver.of_type("succeeded")] == [{"best_round": 500}]
    assert len(receiver.requests) <= 10, receiver.requests


def test_the_outcome_arrives_when_the_backlog_cannot_drain_before_close() -> None:
    # Prepare: 1 s a request of at most 10 events: 300 rounds would need 30 s
    receiver = EventReceiver(delay_s=1.0)
    reporter = EventReporter(
        project_id="p1", source="aggregator", callback_url=receiver.url, max_batch=10
    )

    # Execute
    _rounds(reporter, 300)
    reporter.report(EventType.SUCCEEDED, best_round=300)
    started = time.monotonic()
    reporter.close(timeout=2)
    closed_after = time.monotonic() - started
    receiver.close()

    # Assert: the outcome is there, in one piece; what rounds came, came in order
    assert [e["data"] for e in receiver.of_type("succeeded")] == [{"best_round": 300}]
    rounds = [e["data"]["round"] for e in receiver.of_type("round_completed")]
    assert rounds == sorted(rounds) and len(rounds) < 300
    assert closed_after < 15


def test_hurry_sends_the_outcome_and_drops_the_backlog() -> None:
    # Prepare
    receiver = EventReceiver(delay_s=0.5)
    reporter = EventReporter(
        project_id="p1", source="aggregator", callback_url=receiver.url, max_batch=5
    )
    _rounds(reporter, 100)
    reporter.report(EventType.FAILED, reason="stopped")

    # Execute
    reporter.hurry()
    reporter.close(timeout=30)
    receiver.close()

    # Assert
    assert [e["data"]["reason"] for e in receiver.of_type("failed")] == ["stopped"]
    assert len(receiver.of_type("round_completed")) < 100


def test_the_outcome_is_retried_beyond_max_attempts() -> None:
    # Prepare: three 503s, one attempt allowed for other events
    answers = iter([httpx.Response(503)] * 3 + [httpx.Response(204)])
    reporter = _reporter(httpx.MockTransport(lambda request: next(answers)), attempts=1)

    # Execute
    reporter.report(EventType.SUCCEEDED)
    reporter.close()

    # Assert
    assert [e.type for e in reporter.delivered] == [EventType.SUCCEEDED]


def test_a_receiver_that_takes_one_event_per_request_gets_them_all() -> None:
    # Prepare: an older manager answers a list with 422
    receiver = EventReceiver(accept_lists=False)
    reporter = EventReporter(project_id="p1", source="aggregator", callback_url=receiver.url)

    # Execute
    _rounds(reporter, 20)
    reporter.report(EventType.SUCCEEDED)
    reporter.close()
    receiver.close()

    # Assert
    assert [e["type"] for e in receiver.events] == ["round_completed"] * 20 + ["succeeded"]
    assert set(receiver.requests) == {1}
