"""`OPTIONS` answers and the `Allow` header of every 405, from the app's routes (RFC 9110).

Starlette answers a method a path does not have with the methods of the first route of that
path only (`POST /projects` hides `GET /projects`), and it has no `OPTIONS` handling, so an
`OPTIONS` request was a 405 listing one method. This middleware asks every route of the app
whether it matches the path: `OPTIONS` on a known path is a 204 with `Allow` naming all its
methods (no token needed: it says only what the public OpenAPI page says), and a 405 from the
app gets the same `Allow`. Unknown paths stay 404s.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowedMethodsMiddleware", "allowed_methods"]


#: The methods asked about; OPTIONS is always allowed on a path that exists.
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
#: What routing adds to a scope; a probe starts from the request as it arrived.
_ROUTING_KEYS = frozenset({"fastapi", "route", "endpoint", "path_params"})


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods the routes answer on the path of `scope`, with OPTIONS; [] if none do.

    Each method is probed with the routes' own matching (FastAPI nests included routers, so
    their routes cannot simply be listed): a method is allowed if some route matches fully.

    Parameters
    ----------
    routes : list[BaseRoute]
        The app's routes (`app.router.routes`).
    scope : Scope
        The request's ASGI scope; only its path (and root path) are used.
    """
    base = {k: v for k, v in scope.items() if k not in _ROUTING_KEYS}
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**base, "method": method})[0] is Match.FULL for route in routes)
    ]
    return [*allowed, "OPTIONS"] if allowed else []


class AllowedMethodsMiddleware:
    """Answer `OPTIONS` with 204 and `Allow`; make every 405 name all methods of its path.

    Parameters
    ----------
    app : ASGIApp
        The application to wrap; its routes are read from `scope["app"]` per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        router = getattr(scope.get("app"), "router", None)
        routes: list[BaseRoute] = list(getattr(router, "routes", []))
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(routes, scope)
            if methods:
                response = Response(status_code=204, headers={"Allow": ", ".join(methods)})
                await response(scope, receive, send)
                return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = MutableHeaders(scope=message)
                headers["Allow"] = ", ".join(allowed_methods(routes, scope))
            await send(message)

        await self.app(scope, receive, send_with_allow)
