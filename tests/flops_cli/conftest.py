"""Fakes for the CLI's tests: a manager answering through `httpx.MockTransport`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["FakeManager", "event", "sse"]


def event(event_id: int, kind: str, type_: str, message: str = "", **data: Any) -> dict[str, Any]:
    """An event as the manager lists it."""
    return {
        "id": event_id,
        "timestamp": f"2026-11-22T10:00:{event_id:02d}+00:00",
        "kind": kind,
        "type": type_,
        "source": "manager" if kind == "state" else "aggregator",
        "message": message,
        "data": data,
    }


def sse(events: list[dict[str, Any]]) -> bytes:
    """The Server-Sent Events body the manager streams for `events`."""
    return "".join(f"id: {e['id']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


Handler = Callable[[httpx.Request], httpx.Response]


class FakeManager:
    """Routes requests by (method, path) to canned answers and records what it received."""

    def __init__(self, routes: dict[tuple[str, str], Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        if callable(answer):
            return answer(request)
        # A fresh response each time: a response's body can be read only once.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies sent to `path`."""
        return [json.loads(r.content) for r in self.requests if r.url.path == path]
