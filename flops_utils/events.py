"""Project events (`started`, `round_completed`, `succeeded`, `failed`, ...) and their delivery.

Aggregators and learners report what happens to the manager by POSTing one JSON object per
event to a callback URL (the schema is `Event`, documented in `docs/events.md`). Delivery runs
on a background thread so that a slow or absent manager never stalls training: events are
queued, sent in order, retried with exponential backoff and jitter, and dropped with a log line
when the receiver stays unreachable. `close()` waits a bounded time for the queue to drain.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, Field

from flops_utils.logs import get_logger

__all__ = ["Event", "EventReporter", "EventType"]

_log = get_logger("events")


class EventType(StrEnum):
    """Kinds of events a FLOps component reports."""

    STARTED = "started"
    LEARNER_CONNECTED = "learner_connected"
    LEARNER_DROPPED = "learner_dropped"
    ROUND_COMPLETED = "round_completed"
    STEP_COMPLETED = "step_completed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CACHE_PRUNED = "cache_pruned"
    WARNING = "warning"


class Event(BaseModel):
    """One event as it is POSTed to the callback URL."""

    type: EventType
    project_id: str
    source: str = Field(
        description="Who reports: `aggregator`, `cluster:<name>` or `learner:<name>`."
    )
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = Field(default_factory=dict)


_STOP = object()


class EventReporter:
    """Send events to a callback URL in order, off the caller's thread.

    Parameters
    ----------
    project_id : str
        Set on every event.
    source : str
        Who reports (`aggregator`, `learner:<name>`).
    callback_url : str | None
        Where to POST events; `None` only logs them.
    max_attempts : int
        Delivery attempts per event before it is dropped.
    callback_token : str | None
        Sent as `Authorization: Bearer <token>` so the receiver knows the sender; never logged.
    transport : httpx.BaseTransport | None
        For tests or custom networking; the default is a plain HTTP transport.
    """

    def __init__(
        self,
        *,
        project_id: str,
        source: str,
        callback_url: str | None,
        callback_token: str | None = None,
        max_attempts: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.project_id = project_id
        self.source = source
        self.callback_url = callback_url
        self.max_attempts = max_attempts
        self.delivered: list[Event] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        headers = {"Authorization": f"Bearer {callback_token}"} if callback_token else {}
        self._client = httpx.Client(timeout=10.0, transport=transport, headers=headers)
        self._thread: threading.Thread | None = None
        if callback_url:
            self._thread = threading.Thread(target=self._run, name="flops-events", daemon=True)
            self._thread.start()

    def report(self, event_type: EventType, **data: Any) -> Event:
        """Queue one event for delivery and return it."""
        event = Event(type=event_type, project_id=self.project_id, source=self.source, data=data)
        _log.info("project=%s event=%s %s", self.project_id, event_type.value, _summary(data))
        if self._thread is not None:
            self._queue.put(event)
        return event

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (waiting at most `timeout` seconds) and stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._deliver(item)

    def _deliver(self, event: Event) -> None:
        assert self.callback_url is not None
        body = event.model_dump(mode="json")
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.post(self.callback_url, json=body)
                if response.status_code < 500:
                    if response.is_error:
                        _log.warning(
                            "project=%s event %s refused by receiver: HTTP %s",
                            self.project_id,
                            event.type.value,
                            response.status_code,
                        )
                    else:
                        self.delivered.append(event)
                    return
            except httpx.HTTPError as e:
                _log.debug("project=%s event delivery attempt %s: %s", self.project_id, attempt, e)
            time.sleep(min(4.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0))
        _log.warning(
            "project=%s event %s dropped: receiver unreachable after %s attempts",
            self.project_id,
            event.type.value,
            self.max_attempts,
        )


def _summary(data: dict[str, Any]) -> str:
    keys = ("cluster", "cycle", "round", "reason", "learner", "model_version", "duration_s")
    return " ".join(f"{k}={data[k]}" for k in keys if k in data)
