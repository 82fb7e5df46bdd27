"""The SLA v2.0 schema of the fake and the checks Oakestra runs on an SLA before using it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

__all__ = ["SCHEMA_PATH", "SlaRejected", "check_sla", "load_sla_schema", "validate_sla"]

SCHEMA_PATH = Path(__file__).with_name("sla_schema.json")
"""JSON Schema of Oakestra's SLA v2.0 (unknown keys allowed, as in Oakestra)."""


class SlaRejected(Exception):
    """Raised when Oakestra would refuse an SLA; `status` is the HTTP status it would answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_sla_schema() -> dict[str, Any]:
    """Return the SLA schema (a fresh copy)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def validate_sla(sla: Any) -> None:
    """Check an SLA against the schema only (not its version), for tests of SLA generators.

    Raises
    ------
    jsonschema.ValidationError
        The best-matching error, with its path, e.g. a name that breaks the pattern.
    """
    error = jsonschema.exceptions.best_match(_validator().iter_errors(sla))
    if error is not None:
        raise error


def check_sla(sla: Any) -> None:
    """Run Oakestra's `parse_sla_json` on a request body.

    Raises
    ------
    SlaRejected
        500 for a missing or unsupported `sla_version` (`v1.0` raises "Deprecated", other
        versions a `KeyError`, both unhandled in Oakestra); 422 for a schema error.
    """
    if not isinstance(sla, dict):
        raise SlaRejected(500, "the SLA is not a JSON object")
    version = sla.get("sla_version")
    if version == "v1.0":
        raise SlaRejected(500, "Deprecated")
    if version != "v2.0":
        raise SlaRejected(500, f"unknown sla_version {version!r}")
    try:
        validate_sla(sla)
    except jsonschema.ValidationError as e:
        raise SlaRejected(422, e.message) from e
