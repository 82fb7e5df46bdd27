"""A limit on the size of request bodies, enforced before anything parses them.

A body that declares a `Content-Length` above the limit is answered 413 at once, unread. A
body without one (chunked transfer encoding), or one that sends more than it declared, is
counted as it arrives and refused as soon as it passes the limit: the route that reads it
gets a 413 `HTTPException` instead of the next chunk, so no more than the limit (plus one
chunk) is ever held in memory.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "BodyTooLargeError"]


class BodyTooLargeError(HTTPException):
    """Raised when a request body passes the manager's limit; answered 413, permanent."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    """The 413 answer's `detail`: what the limit is and where it is set."""
    return (
        f"request body too large: at most {limit} bytes are accepted (the manager's "
        "FLOPS_MAX_BODY_BYTES)"
    )


class BodyLimitMiddleware:
    """Refuse HTTP request bodies larger than `max_bytes` with a 413.

    Parameters
    ----------
    app : ASGIApp
        The application to wrap.
    max_bytes : int
        The largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            # Read outside a route (no exception handler in between): answer here.
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": too_large_message(self.max_bytes)},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
