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
from typing import Literal

from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_manager.lifecycle.mlflow_rest import MlflowSession, MlflowUnavailable, experiment_name

__all__ = ["RunStatus", "end_running_runs", "experiment_name"]

_log = get_logger("manager.tracking")

RunStatus = Literal["KILLED", "FAILED"]


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
    ended: list[str] = []
    try:
        with MlflowSession(tracking_url, timeout_s=timeout, request_timeout_s=2.0) as mlflow:
            experiment_id = mlflow.experiment_id(project_id)
            if experiment_id is None:  # no run was ever started
                return []
            running = mlflow.search_runs(
                experiment_id, max_results=1000, filter="attributes.status = 'RUNNING'"
            )
            for run in running:
                run_id = run["info"]["run_id"]
                mlflow.call(
                    "POST", "runs/update",
                    json={"run_id": run_id, "status": status,
                          "end_time": int(time.time() * 1000)},
                )  # fmt: skip
                ended.append(run_id)
    except (MlflowUnavailable, KeyError, TypeError) as e:
        what = str(e) if isinstance(e, MlflowUnavailable) else f"unexpected reply ({e!r})"
        _log.warning(
            "project=%s cannot end its RUNNING MLflow runs at %s (%s); ended %s",
            project_id, redact_url(tracking_url), what, ended or "none",
        )  # fmt: skip
        return ended
    if ended:
        _log.info("project=%s MLflow runs %s ended %s", project_id, ", ".join(ended), status)
    return ended
