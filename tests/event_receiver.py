"""A small HTTP receiver for FLOps events, for local runs (the demo) and tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["EventReceiver"]


class EventReceiver:
    """Listen on loopback and keep every JSON event POSTed to `url`, in arrival order.

    A request carries one event (a JSON object) or several (a JSON list), as the manager's
    callback route takes them.

    Parameters
    ----------
    on_event : Callable[[dict[str, Any]], None] | None
        Called on the server thread for each event as it arrives.
    delay_s : float
        Seconds each request takes before it is answered (a slow receiver).
    accept_lists : bool
        `False` answers a list with 422, as a receiver that takes one event per request does.
    """

    def __init__(
        self,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        *,
        delay_s: float = 0.0,
        accept_lists: bool = True,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[int] = []
        """Events per accepted request, in arrival order."""
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                except json.JSONDecodeError:
                    self.send_response(400)
                    self.end_headers()
                    return
                if isinstance(payload, list) and not accept_lists:
                    self.send_response(422)
                    self.end_headers()
                    return
                time.sleep(delay_s)
                events = payload if isinstance(payload, list) else [payload]
                with receiver._cond:
                    receiver.events.extend(events)
                    receiver.requests.append(len(events))
                    receiver._cond.notify_all()
                if on_event is not None:
                    for event in events:
                        on_event(event)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """Events of one type received so far."""
        with self._cond:
            return [e for e in self.events if e["type"] == event_type]

    def wait_for(
        self,
        event_type: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Return the first event of `event_type` matching `predicate`, waiting for it.

        Raises
        ------
        TimeoutError
            If none arrives within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event["type"] == event_type and predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {event_type} event within {timeout:g} s")
                self._cond.wait(remaining)

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
