"""Events reach the receiver in order, survive a receiver hiccup, and never block the caller."""

from __future__ import annotations

import httpx

from flops_utils.events import EventReporter, EventType


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
        import json

        received.append(json.loads(request.content))
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

    reporter = _reporter(httpx.MockTransport(refuse), attempts=2)

    # Execute
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
