"""Project events (`started`, `round_completed`, `succeeded`, `failed`, ...) and their delivery.

Aggregators and learners report what happens to the manager by POSTing events to a callback
URL (the schema is `Event`, documented in `docs/events.md`). Delivery runs on a background
thread so that a slow or absent manager never stalls training.

Design: events wait in one ordered queue. Each request carries everything queued so far (up
to `max_batch` events) as one JSON list, so a receiver that needs a while per request still
keeps up with thousands of short rounds. The outcome (`succeeded` or `failed`) is what the
manager cannot do without, so it never waits behind a backlog: it rides in the next request
with the events before it when they all fit in one, and otherwise (or once a request with it
failed) it jumps the queue and goes alone; it is retried for `outcome_timeout` seconds instead
of `max_attempts` times. Other events are retried `max_attempts` times with exponential
backoff and jitter, then dropped with a log line. A receiver that refuses a list (an older
manager: 400, 405, 415 or 422) is sent one event per request from then on. `close()` waits a
bounded time: `timeout` for the backlog, `outcome_timeout` for the outcome.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, Field

from flops_core.logs import get_logger

__all__ = ["OUTCOME_TYPES", "Event", "EventReporter", "EventType"]

_log = get_logger("events")

#: Answers of a receiver that takes one event per request, not a list.
_LIST_REFUSED = frozenset({400, 405, 415, 422})


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


#: The events that end a reporter's work: delivered first, retried longest.
OUTCOME_TYPES = frozenset({EventType.SUCCEEDED, EventType.FAILED})


class Event(BaseModel):
    """One event as it is POSTed to the callback URL."""

    type: EventType
    project_id: str
    source: str = Field(
        description="Who reports: `aggregator`, `cluster:<name>` or `learner:<name>`."
    )
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = Field(default_factory=dict)


class EventReporter:
    """Send events to a callback URL in order and in batches, off the caller's thread.

    Parameters
    ----------
    project_id : str
        Set on every event.
    source : str
        Who reports (`aggregator`, `learner:<name>`).
    callback_url : str | None
        Where to POST events; `None` only logs them.
    callback_token : str | None
        Sent as `Authorization: Bearer <token>` so the receiver knows the sender; never logged.
    max_attempts : int
        Delivery attempts of a request without the outcome before its events are dropped.
    max_batch : int
        Most events in one request.
    outcome_timeout : float
        Seconds the outcome (`succeeded`, `failed`) is retried, from the moment it is reported.
    request_timeout : float
        Seconds one request may take.
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
        max_batch: int = 200,
        outcome_timeout: float = 60.0,
        request_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.project_id = project_id
        self.source = source
        self.callback_url = callback_url
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self.outcome_timeout = outcome_timeout
        self.request_timeout = request_timeout
        self.delivered: list[Event] = []
        self.outcome_reported = False
        self._pending: deque[Event] = deque()
        # Re-entrant: `hurry()` may run in a signal handler on a thread inside `report()`.
        self._cond = threading.Condition(threading.RLock())
        self._closing = False
        self._drain_deadline = float("inf")
        self._outcome_deadline = float("inf")
        self._outcome_alone = False
        self._singly = False
        headers = {"Authorization": f"Bearer {callback_token}"} if callback_token else {}
        self._client = httpx.Client(timeout=request_timeout, transport=transport, headers=headers)
        self._thread: threading.Thread | None = None
        if callback_url:
            self._thread = threading.Thread(target=self._run, name="flops-events", daemon=True)
            self._thread.start()

    def report(self, event_type: EventType, **data: Any) -> Event:
        """Queue one event for delivery and return it."""
        event = Event(type=event_type, project_id=self.project_id, source=self.source, data=data)
        _log.info("project=%s event=%s %s", self.project_id, event_type.value, _summary(data))
        if event_type in OUTCOME_TYPES:
            self.outcome_reported = True
            self._outcome_deadline = time.monotonic() + self.outcome_timeout
        if self._thread is not None:
            with self._cond:
                self._pending.append(event)
                self._cond.notify_all()
        return event

    def hurry(self) -> None:
        """Send only the outcome from now on; drop the backlog (the process is told to stop).

        Safe to call from a signal handler.
        """
        with self._cond:
            self._closing = True
            self._drain_deadline = time.monotonic()
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued and stop.

        The backlog gets `timeout` seconds; the outcome is retried until `outcome_timeout`
        seconds after it was reported. What is still queued then is dropped with a log line.
        """
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._drain_deadline = min(self._drain_deadline, time.monotonic() + timeout)
                self._cond.notify_all()
            outcome_wait = max(0.0, self._outcome_deadline - time.monotonic())
            if outcome_wait == float("inf"):
                outcome_wait = 0.0
            # A request under way when a deadline passes may still take `request_timeout`.
            self._thread.join(max(timeout, outcome_wait) + self.request_timeout + 1.0)
            self._thread = None
        self._client.close()

    # -- the delivery thread ----------------------------------------------------------------

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._send(batch)

    def _next_batch(self) -> list[Event] | None:
        """The events of the next request; `None` once closed and nothing is left to send."""
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if self._closing and time.monotonic() >= self._drain_deadline:
                outcomes = [e for e in self._pending if e.type in OUTCOME_TYPES]
                self._drop(len(self._pending) - len(outcomes), "the reporter is closing")
                self._pending = deque(outcomes[1:])
                if not outcomes or time.monotonic() >= self._outcome_deadline:
                    self._drop(len(outcomes), "its delivery time is over")
                    self._pending.clear()
                    return None
                return outcomes[:1]
            if not self._pending:
                return None
            limit = 1 if self._singly else self.max_batch
            first_outcome = next(
                (i for i, e in enumerate(self._pending) if e.type in OUTCOME_TYPES), None
            )
            if first_outcome is not None and (
                first_outcome >= self.max_batch or self._outcome_alone
            ):
                outcome = self._pending[first_outcome]
                del self._pending[first_outcome]
                return [outcome]
            return [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]

    def _send(self, batch: list[Event]) -> None:
        has_outcome = any(e.type in OUTCOME_TYPES for e in batch)
        attempt = 0
        while True:
            attempt += 1
            status = self._post(batch)
            if status is not None and status < 300:
                self.delivered.extend(batch)
                return
            if status is not None and status < 500:
                if len(batch) > 1 and status in _LIST_REFUSED:
                    self._singly = True  # an older receiver: one event per request
                    self._requeue(batch)
                    return
                _log.warning(
                    "project=%s %s refused by the receiver: HTTP %s",
                    self.project_id, _names(batch), status,
                )  # fmt: skip
                return
            if has_outcome and len(batch) > 1:
                self._outcome_alone = True  # the backlog must not hold the outcome up
                self._requeue(batch)
                return
            if not self._retry_after(attempt, has_outcome):
                self._drop(len(batch), f"the receiver stayed unreachable ({attempt} attempts)")
                return
            with self._cond:
                if not has_outcome and self._outcome_queued():
                    self._outcome_alone = True  # the outcome goes first; these follow
                    self._pending.extendleft(reversed(batch))
                    return

    def _post(self, batch: list[Event]) -> int | None:
        assert self.callback_url is not None
        if self._singly:
            body: Any = batch[0].model_dump(mode="json")
        else:
            body = [e.model_dump(mode="json") for e in batch]
        try:
            return self._client.post(self.callback_url, json=body).status_code
        except httpx.HTTPError as e:
            _log.debug("project=%s event delivery failed: %s", self.project_id, e)
            return None

    def _retry_after(self, attempt: int, has_outcome: bool) -> bool:
        """Back off before the next attempt; `False` when there is to be none.

        The wait of a request without the outcome ends early when the outcome is reported.
        """
        if not has_outcome and attempt >= self.max_attempts:
            return False
        deadline = self._outcome_deadline if has_outcome else self._drain_deadline
        end = time.monotonic() + min(4.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)
        if end >= deadline:
            return False
        with self._cond:
            while (left := end - time.monotonic()) > 0:
                if not has_outcome and self._outcome_queued():
                    return True
                self._cond.wait(left)
        return has_outcome or time.monotonic() < self._drain_deadline

    def _outcome_queued(self) -> bool:
        return any(e.type in OUTCOME_TYPES for e in self._pending)

    def _requeue(self, batch: list[Event]) -> None:
        with self._cond:
            self._pending.extendleft(reversed(batch))

    def _drop(self, count: int, why: str) -> None:
        if count:
            _log.warning("project=%s %s event(s) not delivered: %s", self.project_id, count, why)


def _names(batch: list[Event]) -> str:
    if len(batch) == 1:
        return f"event {batch[0].type.value}"
    return f"{len(batch)} events ({batch[0].type.value} to {batch[-1].type.value})"


def _summary(data: dict[str, Any]) -> str:
    keys = ("cluster", "cycle", "round", "reason", "learner", "model_version", "duration_s")
    return " ".join(f"{k}={data[k]}" for k in keys if k in data)
