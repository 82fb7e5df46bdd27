"""Ending the MLflow runs a project left `RUNNING` when the manager ends it.

An aggregator ends its run itself (FINISHED, FAILED, or KILLED on SIGTERM), but not when it is
killed, nor when the manager is killed; a run would then stay RUNNING forever in MLflow's UI.
Once a project's services are undeployed, the manager ends whatever run of the project's
experiment (`flops-<project id>`, as the aggregator names it; hierarchical FL's cluster runs
included) is still RUNNING: KILLED when the project was cancelled or the manager stopped,
FAILED when it failed. The calls go to MLflow's REST API with short timeouts and one overall
deadline: with MLflow down the project still ends at once, and the log says which runs stay
open.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import httpx

from flops_utils.logs import get_logger
from flops_utils.redact import redact_url

__all__ = ["RunStatus", "end_running_runs", "experiment_name"]

_log = get_logger("manager.tracking")

RunStatus = Literal["KILLED", "FAILED"]


def experiment_name(project_id: str) -> str:
    """The MLflow experiment of a project (the aggregator's default)."""
    return f"flops-{project_id}"


class _Deadline(Exception):
    pass


def end_running_runs(
    tracking_url: str, project_id: str, status: RunStatus, *, timeout: float = 5.0
) -> list[str]:
    """End the project's RUNNING runs with `status`; return their ids. Never raises.

    Parameters
    ----------
    tracking_url : str
        The MLflow tracking server.
    project_id : str
        The project whose experiment is searched.
    status : {"KILLED", "FAILED"}
        KILLED for a cancelled project or a stopped manager, FAILED for a failed project.
    timeout : float
        Seconds all calls together may take.
    """
    deadline = time.monotonic() + timeout
    ended: list[str] = []
    api = f"{tracking_url.rstrip('/')}/api/2.0/mlflow"
    try:
        with httpx.Client(timeout=min(2.0, timeout)) as client:

            def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
                if time.monotonic() > deadline:
                    raise _Deadline
                return client.request(method, f"{api}/{path}", **kwargs)

            found = call(
                "GET", "experiments/get-by-name",
                params={"experiment_name": experiment_name(project_id)},
            )  # fmt: skip
            if found.status_code == 404:  # no run was ever started
                return []
            found.raise_for_status()
            experiment_id = found.json()["experiment"]["experiment_id"]
            search = call(
                "POST", "runs/search",
                json={"experiment_ids": [experiment_id], "max_results": 1000,
                      "filter": "attributes.status = 'RUNNING'"},
            )  # fmt: skip
            search.raise_for_status()
            for run in search.json().get("runs", []):
                run_id = run["info"]["run_id"]
                call(
                    "POST", "runs/update",
                    json={"run_id": run_id, "status": status,
                          "end_time": int(time.time() * 1000)},
                ).raise_for_status()  # fmt: skip
                ended.append(run_id)
    except (httpx.HTTPError, _Deadline, KeyError, ValueError) as e:
        what = "no answer in time" if isinstance(e, _Deadline) else type(e).__name__
        if isinstance(e, httpx.HTTPStatusError):
            what = f"HTTP {e.response.status_code}"
        _log.warning(
            "project=%s cannot end its RUNNING MLflow runs at %s (%s); ended %s",
            project_id, redact_url(tracking_url), what, ended or "none",
        )  # fmt: skip
        return ended
    if ended:
        _log.info("project=%s MLflow runs %s ended %s", project_id, ", ".join(ended), status)
    return ended
