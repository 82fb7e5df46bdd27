"""A small typed client of the manager's REST API; every failure becomes one `ManagerError`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any, cast
from urllib.parse import quote

import httpx

from flops_cli.api_types import (
    Event,
    Health,
    LogsResponse,
    MockDataResult,
    NodeInfo,
    NodeTokenCreated,
    NodeTokenInfo,
    Project,
    ProjectCreated,
    ProjectSummary,
    TokenCreated,
    WhoAmI,
)
from flops_core.closing import Closing
from flops_core.errors import FlopsError

__all__ = ["DEFAULT_URL", "ManagerClient", "ManagerError"]

DEFAULT_URL = "http://127.0.0.1:5072"
API = "/api/flops"

_REFUSED_TOKEN = (
    "the manager refused the token ({detail}): set FLOPS_TOKEN or pass --token, or run "
    "`flops server`, which keeps the admin token where `flops` finds it"
)


class ManagerError(FlopsError):
    """Raised for any request that failed; the message is the server's, safe to show.

    Parameters
    ----------
    message : str
        What went wrong, e.g. "422: training_configuration.training_rounds: ...".
    status_code : int | None
        The HTTP status, or None when the manager could not be reached.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ManagerClient(Closing):
    """One method per endpoint of the manager's API.

    Parameters
    ----------
    base_url : str
        Where the manager listens, e.g. "http://127.0.0.1:5072".
    token : str | None
        The bearer token; without one only `health` works.
    timeout : float
        Seconds to wait for an answer (the event stream waits longer between events).
    transport : httpx.BaseTransport | None
        A transport to use instead of the network (tests pass `httpx.MockTransport`).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url + API, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def health(self) -> Health:
        """Return the manager's health; a degraded manager (503) is an answer, not an error."""
        return cast(Health, self._request("GET", "/health", accept=(503,)))

    def whoami(self) -> WhoAmI:
        """Return the customer and admin flag of the token."""
        return cast(WhoAmI, self._request("GET", "/whoami"))

    def create_token(
        self, customer_id: str, *, label: str = "", admin: bool = False
    ) -> TokenCreated:
        """Create an API token for `customer_id` (admin only); the answer holds the token."""
        body = {"customer_id": customer_id, "label": label, "is_admin": admin}
        return cast(TokenCreated, self._request("POST", "/tokens", json=body))

    def list_nodes(self) -> list[NodeInfo]:
        """The registered learner nodes (the admin gets addresses, stored tags and reads)."""
        return cast(list[NodeInfo], self._request("GET", "/nodes"))

    def create_node_token(self, node: str, *, label: str = "") -> NodeTokenCreated:
        """Create a node token for learner node `node` (admin only); the answer holds it."""
        body = {"node": node, "label": label}
        return cast(NodeTokenCreated, self._request("POST", "/node-tokens", json=body))

    def list_node_tokens(self, *, include_revoked: bool = False) -> list[NodeTokenInfo]:
        """The node tokens (admin only), oldest first, without the tokens themselves."""
        params = {"include_revoked": "true"} if include_revoked else None
        return cast(list[NodeTokenInfo], self._request("GET", "/node-tokens", params=params))

    def revoke_node_token(self, token_id: int) -> None:
        """Revoke a node token (admin only): its node's reports are refused from now on."""
        self._request("DELETE", f"/node-tokens/{int(token_id)}")

    def create_project(self, body: Mapping[str, Any]) -> ProjectCreated:
        """Create a project from a FLOps-compatible body (see `flops_cli.project_commands`)."""
        return cast(ProjectCreated, self._request("POST", "/projects", json=dict(body)))

    def list_projects(
        self, *, states: list[str] | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[ProjectSummary], int]:
        """Return one page of the projects the token may see, newest first, and their total.

        Parameters
        ----------
        states : list[str] | None
            Only projects in these states.
        limit, offset : int
            The page: at most `limit` (1..500) projects after skipping `offset`.
        """
        params = httpx.QueryParams({"limit": limit, "offset": offset, "state": list(states or [])})
        try:
            response = self._http.get("/projects", params=params)
        except httpx.HTTPError as e:
            raise self._transport_error(e) from e
        if response.is_error:
            raise _status_error(response)
        projects = cast(list[ProjectSummary], response.json())
        total = response.headers.get("X-Total-Count", "")
        return projects, int(total) if total.isdigit() else len(projects)

    def get_project(self, project_id: str) -> Project:
        """Return one project with its configuration, result and services."""
        return cast(Project, self._request("GET", f"/projects/{_quote(project_id)}"))

    def events(self, project_id: str, *, after: int | str | None = None) -> list[Event]:
        """Return the project's events, or those after event id `after`."""
        params = {"after": str(after)} if after is not None else None
        return cast(
            list[Event],
            self._request("GET", f"/projects/{_quote(project_id)}/events", params=params),
        )

    def stream_events(
        self, project_id: str, *, after: int | str | None = None, idle_timeout: float = 30.0
    ) -> Iterator[Event]:
        """Yield the project's events from its Server-Sent Events stream as they happen.

        Parameters
        ----------
        project_id : str
            The project.
        after : int | str | None
            Resume after this event id (sent as `Last-Event-ID` and `?after=`).
        idle_timeout : float
            Seconds without any data after which `ManagerError` is raised (the caller
            reconnects); the stream ends by itself when the project reaches a final state.
        """
        headers = {"Accept": "text/event-stream"}
        params = {}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
            params["after"] = str(after)
        timeout = httpx.Timeout(self._http.timeout.connect, read=idle_timeout)
        path = f"/projects/{_quote(project_id)}/events/stream"
        try:
            with self._http.stream(
                "GET", path, headers=headers, params=params, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise _status_error(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as e:
            raise self._transport_error(e) from e

    def logs(self, project_id: str, *, tail: int = 50) -> LogsResponse:
        """Return the last `tail` lines of each of the project's services."""
        path = f"/projects/{_quote(project_id)}/logs"
        return cast(LogsResponse, self._request("GET", path, params={"tail": str(tail)}))

    def cancel_project(self, project_id: str) -> dict[str, Any]:
        """Cancel a project: its services are stopped; returns its id and state."""
        return cast(dict[str, Any], self._request("DELETE", f"/projects/{_quote(project_id)}"))

    def tracking(self) -> str:
        """Return the URL of the MLflow tracking server."""
        answer = cast(dict[str, Any], self._request("GET", "/tracking"))
        return str(answer["tracking_url"])

    def create_mock_data(
        self,
        *,
        dataset: str,
        partitions: int,
        tag: str,
        customer_id: str = "Admin",
        partitioning: dict[str, Any] | None = None,
        label_column: str | None = None,
        wait: bool = True,
    ) -> MockDataResult:
        """Push `partitions` parts of a dataset to the learner nodes under `tag`.

        `dataset` is a bundled dataset's name, a .parquet/.csv file in the manager's
        datasets directory, or a Hugging Face hub dataset (`mnist`, `owner/name`);
        `partitioning` e.g. `{"kind": "dirichlet", "alpha": 0.1}` (default IID). With `wait`
        the answer comes when the data is on the data servers.
        """
        config: dict[str, Any] = {
            "dataset_name": dataset,
            "number_of_partitions": partitions,
            "data_tag": tag,
        }
        if label_column is not None:
            config["label_column"] = label_column
        body: dict[str, Any] = {"customerID": customer_id, "mock_data_configuration": config}
        if partitioning is not None:
            body["partitioning"] = partitioning
        params = None if wait else {"wait": "false"}
        return cast(MockDataResult, self._request("POST", "/mocks", json=body, params=params))

    def list_mock_data(self) -> list[MockDataResult]:
        """The caller's mock-data jobs, newest first."""
        return cast(list[MockDataResult], self._request("GET", "/mocks"))

    def get_mock_data(self, job_id: str) -> MockDataResult:
        """One mock-data job with its partitions and events."""
        return cast(MockDataResult, self._request("GET", f"/mocks/{_quote(job_id)}"))

    def delete_mock_data(self, job_id: str) -> dict[str, Any]:
        """Drop a mock-data job's partitions from the data servers."""
        return cast(dict[str, Any], self._request("DELETE", f"/mocks/{_quote(job_id)}"))

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as e:
            raise self._transport_error(e) from e
        if response.is_error and response.status_code not in accept:
            raise _status_error(response)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise ManagerError(
                f"{response.status_code}: the manager sent an answer that is not JSON",
                status_code=response.status_code,
            ) from e

    def _transport_error(self, error: httpx.HTTPError) -> ManagerError:
        if isinstance(error, httpx.ConnectError):
            return ManagerError(f"no manager at {self.base_url}: start one with `flops server`")
        if isinstance(error, httpx.TimeoutException):
            return ManagerError(f"the manager at {self.base_url} did not answer in time")
        return ManagerError(f"talking to the manager at {self.base_url} failed: {error}")


def _quote(segment: str) -> str:
    """`segment` as one path segment: "a/../b" cannot reach another endpoint."""
    return quote(segment, safe="")


def _status_error(response: httpx.Response) -> ManagerError:
    """Turn an error response into a `ManagerError` with the server's own message."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 422 and isinstance(detail, list) and detail:
        text = "; ".join(_describe_problem(problem) for problem in detail)
    elif isinstance(detail, str) and detail:
        text = detail
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    else:
        text = response.reason_phrase or "error"
    if isinstance(body, dict) and body.get("request_id"):
        text += f" (request id {body['request_id']})"
    if status == 401:
        return ManagerError(_REFUSED_TOKEN.format(detail=text), status_code=status)
    return ManagerError(f"{status}: {text}", status_code=status)


def _describe_problem(problem: Any) -> str:
    """`training_configuration.training_rounds: ...` from one 422 problem (without "body.")."""
    if not isinstance(problem, dict):
        return str(problem)
    loc = [str(part) for part in problem.get("loc", [])]
    if loc and loc[0] in {"body", "query", "path", "header"}:
        loc = loc[1:]
    message = str(problem.get("msg", "invalid"))
    return f"{'.'.join(loc)}: {message}" if loc else message


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Yield the JSON `data:` of each Server-Sent Event; comments and keep-alives are skipped."""
    data: list[str] = []
    for line in itertools.chain(lines, [""]):
        if line == "" and data:
            try:
                yield cast(Event, json.loads("\n".join(data)))
            except ValueError as e:
                raise ManagerError("the manager's event stream sent a line that is not JSON") from e
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
