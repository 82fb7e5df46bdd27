"""A real HTTP receiver of node reports (`PUT /api/flops/nodes/{name}`), standing in for the
manager in the data server's tests: it keeps every report and answers what the test says."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["NodeReceiver", "ReceivedReport"]

_PREFIX = "/api/flops/nodes/"


@dataclass(frozen=True)
class ReceivedReport:
    """One PUT as it arrived."""

    node: str
    authorization: str
    body: dict[str, Any]


class NodeReceiver:
    """Listen on loopback at `url` (the manager's base URL) and record node reports.

    `status` (default 200) is the answer to every report; change it while running.
    """

    def __init__(self) -> None:
        self.reports: list[ReceivedReport] = []
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.startswith(_PREFIX):
                    self._answer(404, {"detail": "Not Found"})
                    return
                report = ReceivedReport(
                    node=self.path.removeprefix(_PREFIX),
                    authorization=self.headers.get("Authorization", ""),
                    body=json.loads(body),
                )
                with receiver._lock:
                    receiver.reports.append(report)
                    status = receiver.status
                detail = "unknown or revoked node token" if status == 401 else "ok"
                self._answer(status, {"detail": detail})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def received(self) -> list[ReceivedReport]:
        """The reports so far, in arrival order."""
        with self._lock:
            return list(self.reports)

    def last(self) -> ReceivedReport | None:
        """The latest report, if any."""
        with self._lock:
            return self.reports[-1] if self.reports else None

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
