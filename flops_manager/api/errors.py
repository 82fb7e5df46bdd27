"""The one mapping of FLOps exceptions to HTTP status codes and messages safe to show users.

Every error a user sees goes through `ERROR_CATALOG`: an exception class (or a base class of
it) maps to a status code and a message template. Templates are filled from the exception's
attributes (`{token_id}`); `{exc}` stands for the exception's own message and is used only for
classes whose messages are written to be shown (their docstrings say so). Families map through
their base: every `TemporaryError` (a FLOps error that may go away when asked again, such as a
service that is down or not yet started) is a 503 with its own message, which FLOps errors
write to be shown. Anything not in the catalog is a bug: the user gets a 500 with a generic
message and a request id, and the details go to the server log under that same id. Every
response carries the id in `X-Request-ID`.
"""

from __future__ import annotations

import string
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flops_core.errors import PermanentError, TemporaryError
from flops_core.logs import get_logger
from flops_core.repos.git_checkout import RepoPolicyError
from flops_manager.api.allowed_methods import AllowedMethodsMiddleware
from flops_manager.services.mock_jobs import MockJobConflictError, MockJobNotFoundError
from flops_manager.services.node_tokens import (
    InvalidNodeNameError,
    NodeTokenInvalidError,
    NodeTokenNotFoundError,
    NodeTokenOtherNodeError,
)
from flops_manager.services.oakestra_auth import (
    InvalidOakestraTokenError,
    OakestraUserNotAllowedError,
)
from flops_manager.services.projects import ProjectConflictError, ProjectNotFoundError
from flops_manager.services.tokens import InvalidCustomerIdError, TokenNotFoundError

__all__ = [
    "ADMIN_RESPONSES",
    "AUTH_RESPONSES",
    "ERROR_CATALOG",
    "REQUEST_ID_HEADER",
    "ErrorBody",
    "ManagerNotReadyError",
    "NotAuthenticatedError",
    "PermissionDeniedError",
    "RequestIdMiddleware",
    "ValidationErrorBody",
    "ValidationProblem",
    "install_error_handlers",
    "request_id_of",
    "safe_error",
]

_log = get_logger("manager.api")

REQUEST_ID_HEADER = "X-Request-ID"


class NotAuthenticatedError(PermanentError):
    """Raised when a request has no token or an unknown or revoked one; the message is safe."""


class PermissionDeniedError(PermanentError):
    """Raised when a valid token may not do what the request asks; the message is safe."""


class ManagerNotReadyError(TemporaryError):
    """Raised when a request arrives before the manager's database is open; retryable."""


#: Exception class -> (HTTP status, safe message template). Subclasses inherit their base's
#: entry (the nearest in their MRO wins); later parts of the manager add their exceptions here.
ERROR_CATALOG: dict[type[Exception], tuple[int, str]] = {
    # Who is asking: no or a bad token (401), a token that may not do this (403).
    NotAuthenticatedError: (401, "{exc}"),
    InvalidOakestraTokenError: (401, "{exc}"),
    NodeTokenInvalidError: (401, "{exc}"),
    PermissionDeniedError: (403, "{exc}"),
    OakestraUserNotAllowedError: (403, "{exc}"),
    NodeTokenOtherNodeError: (403, "this node token belongs to node {owner}, not {name}"),
    # What the request names: missing (404), invalid (422), not in a fitting state (409).
    TokenNotFoundError: (404, "API token {token_id} not found"),
    ProjectNotFoundError: (404, "project {project_id} not found"),
    MockJobNotFoundError: (404, "mock-data job {job_id} not found"),
    NodeTokenNotFoundError: (404, "node token {token_id} not found"),
    InvalidCustomerIdError: (422, "{exc}"),
    InvalidNodeNameError: (422, "{exc}"),
    RepoPolicyError: (422, "{exc}"),
    ProjectConflictError: (409, "{exc}"),
    MockJobConflictError: (409, "{exc}"),
    # Retryable (503): the Oakestra root, the embedded stack, a data server, the hub, a
    # service that would not stop; the manager itself while it starts or stops.
    ManagerNotReadyError: (503, "the manager is starting or stopping; try again shortly"),
    TemporaryError: (503, "{exc}"),
}


class ErrorBody(BaseModel):
    """The body of every error response except 422."""

    detail: str = Field(description="What went wrong, in words safe to show.")
    request_id: str | None = Field(
        None, description="Only on 500: the id under which the server log has the details."
    )


class ValidationProblem(BaseModel):
    """One problem with a request: where it is and what is wrong."""

    loc: list[str | int] = Field(
        description='Where the problem is, e.g. `["body", "customer_id"]`.'
    )
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="A machine-readable kind of problem (pydantic's).")


class ValidationErrorBody(BaseModel):
    """The body of a 422 response: every problem found in the request."""

    detail: list[ValidationProblem] = Field(description="Each problem with its location.")
    message: str = Field(description="All problems in one line, `location: message; ...`.")


#: The error response every authenticated route can give, for its OpenAPI page.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No token, or an invalid or revoked one."},
    503: {
        "model": ErrorBody,
        "description": "An Oakestra token was sent and the Oakestra root cannot check it.",
    },
}
#: The error responses of admin-only routes.
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    403: {"model": ErrorBody, "description": "The token is not an admin token."},
}

_GENERIC_500 = "internal server error; the server log has the details under this request id"


def safe_error(exc: Exception) -> tuple[int, str] | None:
    """Return the HTTP status and safe message for `exc`, or None if it is not in the catalog.

    Parameters
    ----------
    exc : Exception
        The exception a request raised.
    """
    for cls in type(exc).__mro__:
        entry = ERROR_CATALOG.get(cls)
        if entry is not None:
            status, template = entry
            return status, _fill(template, exc)
    return None


def _fill(template: str, exc: Exception) -> str:
    values: dict[str, Any] = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name:
            values[name] = str(exc) if name == "exc" else getattr(exc, name, "?")
    return template.format_map(values)


def request_id_of(request: Request) -> str:
    """Return the id `RequestIdMiddleware` gave `request` ("-" outside the middleware)."""
    return str(getattr(request.state, "request_id", "-"))


async def _catalog_handler(request: Request, exc: Exception) -> JSONResponse:
    status, message = safe_error(exc) or (500, _GENERIC_500)
    _log.info(
        "request %s %s %s -> %s (%s)",
        request_id_of(request),
        request.method,
        request.url.path,
        status,
        type(exc).__name__,
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default body, minus `input` (which may hold credentials, e.g. in a repo URL)
    # and with pydantic's "Value error, " prefix dropped; `message` sums it up in one line.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")).removeprefix("Value error, "),
            "type": error.get("type", ""),
        }
        for error in errors
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in detail)
    return JSONResponse(
        {"detail": detail, "message": summary or "invalid request"}, status_code=422
    )


class RequestIdMiddleware:
    """Give every HTTP request an id (`X-Request-ID`) and turn unexpected errors into safe 500s.

    Parameters
    ----------
    app : ASGIApp
        The application to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            _log.exception(
                "request %s %s %s failed unexpectedly",
                request_id,
                scope.get("method", "?"),
                scope.get("path", "?"),
            )
            if started:
                raise
            response = JSONResponse(
                {"detail": _GENERIC_500, "request_id": request_id}, status_code=500
            )
            await response(scope, receive, send_with_id)


def _document_validation_errors(app: FastAPI) -> None:
    """Make the OpenAPI page describe the 422 body this module sends, not FastAPI's default."""
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build_openapi()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            _, defs = models_json_schema(
                [(ValidationErrorBody, "validation")],
                ref_template="#/components/schemas/{model}",
            )
            schemas.update(defs["$defs"])
            schemas["HTTPValidationError"] = schemas.pop("ValidationErrorBody")
            schemas.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """Install the catalog's handlers, the 422 handler and the request-id and `Allow` middleware.

    Parameters
    ----------
    app : FastAPI
        The manager's application (see `flops_manager.main.create_app`).
    """
    for exc_type in ERROR_CATALOG:
        app.add_exception_handler(exc_type, _catalog_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_middleware(AllowedMethodsMiddleware)  # OPTIONS, and `Allow` on every 405
    app.add_middleware(RequestIdMiddleware)
    _document_validation_errors(app)
