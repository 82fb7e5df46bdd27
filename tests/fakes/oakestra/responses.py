"""Responses shaped like those of Oakestra's Flask system manager, byte for byte where it matters.

- `jsonify`: Flask 2.1's `jsonify` (compact, sorted keys, trailing newline).
- `double_encoded`: a handler that returns `json_util.dumps(...)` under a flask-smorest
  `@response`: the JSON text is jsonified again, so the body is a JSON *string*.
- `json_text`: a handler that returns `json_util.dumps(...)` without `@response`: Flask sends
  the JSON text as `text/html`.
- `smorest_error`: flask-smorest's error handler. Oakestra calls `abort(code, "message")` or
  `abort(code, {"message": ...})`; webargs' `abort` keeps only keyword arguments, so the
  message never reaches the client: the body is just `{"code": N, "status": "<reason>"}`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

__all__ = [
    "double_encoded",
    "json_text",
    "jsonify",
    "message",
    "reason",
    "smorest_error",
]

_JSON = "application/json"


def reason(status: int) -> str:
    """Return the HTTP reason phrase of `status`, as werkzeug names its exceptions."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"


def jsonify(data: Any, status: int = 200) -> Response:
    """Return `data` as Flask 2.1's `jsonify` would."""
    body = json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n"
    return Response(body, status_code=status, media_type=_JSON)


def double_encoded(data: Any, status: int = 200) -> Response:
    """Return `data` as JSON text inside a JSON string (Oakestra issue #461)."""
    return jsonify(json.dumps(data), status)


def json_text(data: Any, status: int = 200) -> Response:
    """Return `data` as JSON text with Flask's default `text/html` media type."""
    return Response(json.dumps(data), status_code=status, media_type="text/html")


def message(text: str, status: int = 200) -> Response:
    """Return `{"message": text}`, what Oakestra's handlers return as plain dicts."""
    return jsonify({"message": text}, status)


def smorest_error(status: int, errors: dict[str, Any] | None = None) -> Response:
    """Return flask-smorest's error payload for `status`."""
    payload: dict[str, Any] = {"code": status, "status": reason(status)}
    if errors is not None:
        payload["errors"] = errors
    return jsonify(payload, status)
