"""A deadline-bounded session with MLflow's REST API, for the manager's look-ups of a project.

The manager asks MLflow about a project's runs at moments when MLflow may be slow or gone
(an aggregator that exited without its outcome event, a project ended while its run was still
RUNNING). Every call of one session shares a single deadline, so a silent tracking server
costs the caller at most that many seconds; errors leave as `MlflowUnavailable`, whose
message never holds the URL (it may carry credentials).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from flops_core.closing import Closing
from flops_core.errors import TemporaryError

__all__ = ["MlflowSession", "MlflowUnavailable", "experiment_name"]


def experiment_name(project_id: str) -> str:
    """The MLflow experiment of a project (the aggregator's default)."""
    return f"flops-{project_id}"


class MlflowUnavailable(TemporaryError):
    """Raised when MLflow does not answer in time or answers with an error; says which, no URL."""


class MlflowSession(Closing):
    """Calls to one MLflow tracking server that together end by a deadline.

    Parameters
    ----------
    tracking_url : str
        The tracking server's base URL.
    timeout_s : float
        Seconds all calls of the session together may take.
    request_timeout_s : float
        Seconds one call may take at most (less when the deadline is nearer).
    """

    def __init__(self, tracking_url: str, *, timeout_s: float, request_timeout_s: float) -> None:
        self._base = f"{tracking_url.rstrip('/')}/api/2.0/mlflow"
        self._deadline = time.monotonic() + timeout_s
        self._request_timeout_s = min(request_timeout_s, timeout_s)
        self._client = httpx.Client()

    def close(self) -> None:
        """Close the session's connections."""
        self._client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """One REST call (`path` below `/api/2.0/mlflow/`); its JSON, or `None` for a 404.

        Raises
        ------
        MlflowUnavailable
            The deadline passed, the server did not answer, or it answered another error.
        """
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise MlflowUnavailable("no answer in time")
        try:
            timeout = min(left, self._request_timeout_s)
            response = self._client.request(
                method, f"{self._base}/{path}", timeout=timeout, **kwargs
            )
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return dict(response.json())
        except httpx.HTTPStatusError as e:
            raise MlflowUnavailable(f"HTTP {e.response.status_code}") from None
        except httpx.TimeoutException:
            raise MlflowUnavailable("no answer in time") from None
        except (httpx.HTTPError, ValueError) as e:
            # httpx's messages hold the URL, which may hold credentials: name the error only.
            raise MlflowUnavailable(type(e).__name__) from None

    def experiment_id(self, project_id: str) -> str | None:
        """The id of the project's experiment, or `None` if no run was ever started."""
        found = self.call(
            "GET", "experiments/get-by-name",
            params={"experiment_name": experiment_name(project_id)},
        )  # fmt: skip
        if not found:
            return None
        try:
            return str(found["experiment"]["experiment_id"])
        except (KeyError, TypeError):
            raise MlflowUnavailable("an experiment reply without an id") from None

    def search_runs(self, experiment_id: str, **query: Any) -> list[dict[str, Any]]:
        """The runs of an experiment that `query` (runs/search fields) selects."""
        found = self.call("POST", "runs/search", json={"experiment_ids": [experiment_id], **query})
        return list((found or {}).get("runs", []))
