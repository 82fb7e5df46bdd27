"""Fixtures shared by all test folders: free ports and a real HTTP receiver for events."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EventReceiver:
    """A real HTTP server on loopback that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    receiver.events.append(json.loads(body))
                    receiver._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e["type"] == event_type]

    def wait_for(
        self,
        event_type: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event["type"] == event_type and predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {event_type} event within {timeout} s: {self.events}")
                self._cond.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def events() -> Iterator[EventReceiver]:
    receiver = EventReceiver()
    yield receiver
    receiver.close()
