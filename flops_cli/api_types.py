"""The JSON shapes of the manager's API as the `flops` CLI reads them (`TypedDict`s)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from flops_core.vocabulary import FINAL_STATES, ProjectState

__all__ = [
    "FINAL_STATES",
    "Event",
    "Health",
    "LogsResponse",
    "MockDataResult",
    "NodeInfo",
    "NodeTag",
    "NodeTokenCreated",
    "NodeTokenInfo",
    "Project",
    "ProjectCreated",
    "ProjectState",
    "ProjectSummary",
    "ServiceLogs",
    "TokenCreated",
    "WhoAmI",
]


class Health(TypedDict):
    """`GET /api/flops/health`."""

    status: Literal["ok", "degraded"]
    components: dict[str, str]
    version: NotRequired[str]
    database: NotRequired[str]


class WhoAmI(TypedDict):
    """`GET /api/flops/whoami`."""

    customer_id: str
    is_admin: bool


class TokenCreated(TypedDict):
    """`POST /api/flops/tokens`: the only answer that ever holds the token."""

    id: int
    customer_id: str
    token: str
    label: NotRequired[str]
    is_admin: NotRequired[bool]
    created_at: NotRequired[str]


class NodeTag(TypedDict):
    """A data tag a node holds: stored (admin) or as the customer writes it, and its rows."""

    tag: str
    rows: int


class NodeInfo(TypedDict):
    """One entry of `GET /api/flops/nodes`; the admin gets the fields marked not required."""

    name: str
    cluster: str
    platform: str
    state: str
    tags: list[NodeTag]
    address: NotRequired[str]
    port: NotRequired[int]
    data_server: NotRequired[str]
    simulated: NotRequired[bool]
    last_seen: NotRequired[str]
    version: NotRequired[str]
    reads: NotRequired[dict[str, int]]


class NodeTokenCreated(TypedDict):
    """`POST /api/flops/node-tokens`: the only answer that ever holds the node token."""

    id: int
    node: str
    token: str
    label: NotRequired[str]
    created_at: NotRequired[str]


class NodeTokenInfo(TypedDict):
    """One entry of `GET /api/flops/node-tokens` (never the token)."""

    id: int
    node: str
    label: str
    simulated: bool
    created_at: str
    revoked_at: str | None


class ProjectCreated(TypedDict):
    """`POST /api/flops/projects`."""

    id: str
    url: NotRequired[str]
    state: str


class ProjectSummary(TypedDict):
    """One project of `GET /api/flops/projects`."""

    id: str
    customer_id: str
    state: str
    message: str | None
    repo_url: str
    commit: str | None
    created_at: str
    updated_at: str


class Project(ProjectSummary):
    """`GET /api/flops/projects/{id}`: the summary plus configuration, result and services."""

    config: NotRequired[dict[str, Any]]
    result: NotRequired[dict[str, Any] | None]
    services: NotRequired[list[dict[str, Any]] | None]


class Event(TypedDict):
    """One event of a project: a state change (`kind` "state") or a reported event."""

    id: int | str
    timestamp: str
    kind: Literal["state", "event"]
    type: str
    source: NotRequired[str | None]
    message: NotRequired[str | None]
    data: NotRequired[dict[str, Any] | None]


class ServiceLogs(TypedDict):
    """The last lines of one service of a project."""

    service_id: str
    role: str
    name: NotRequired[str]
    lines: list[str]


class LogsResponse(TypedDict):
    """`GET /api/flops/projects/{id}/logs`."""

    services: list[ServiceLogs]


class MockDataResult(TypedDict):
    """`POST /api/flops/mocks`, `GET /api/flops/mocks/{id}`: a mock-data job."""

    data_tag: str
    partitions: list[Any]
    stored_data_tag: NotRequired[str]
    id: NotRequired[str]
    url: NotRequired[str]
    state: NotRequired[str]
    message: NotRequired[str]
    measure: NotRequired[dict[str, Any] | None]
    events: NotRequired[list[dict[str, Any]]]
