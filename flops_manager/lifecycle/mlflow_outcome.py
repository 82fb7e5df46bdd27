"""A project's training outcome as MLflow records it, for when the aggregator's event was lost.

An aggregator that exits with code 0 has finished its MLflow run (FINISHED) and registered
the best model before it reported `succeeded`; if that event never reached the manager (a
network fault, a manager too busy to answer), MLflow still says what happened. The look-up
uses MLflow's REST API with a deadline, so a slow or absent tracking server costs the
project at most `timeout_s` seconds before it is failed as it would have been without it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from flops_utils.logs import get_logger

__all__ = ["confirmed_training", "describe_confirmation"]

_log = get_logger("manager.mlflow")


def confirmed_training(
    tracking_url: str, project_id: str, *, timeout_s: float = 15.0
) -> dict[str, Any] | None:
    """What MLflow confirms of a project's training, or `None` if it confirms nothing.

    Looks at the newest run of the project's top aggregator (experiment `flops-<project id>`,
    tag `flops.project_id`, not a cluster aggregator's run). It confirms the training when
    that run is FINISHED; the model is the newest version of `flops-<project id>` logged by
    that run, if any.

    Parameters
    ----------
    tracking_url : str
        The MLflow tracking server the project's aggregator used.
    project_id : str
        The project.
    timeout_s : float
        Seconds the whole look-up may take.

    Returns
    -------
    dict[str, Any] | None
        `succeeded`-like data: `mlflow_run_id`, `rounds_logged` (the step of the last
        metric), `metrics` (the last round's `loss`, `accuracy`), `model` (`name`,
        `version`, `run_id`, `model_uri`, or `None`), `confirmed_by: "mlflow"`.
    """
    deadline = time.monotonic() + timeout_s
    name = f"flops-{project_id}"
    base = f"{tracking_url.rstrip('/')}/api/2.0/mlflow"
    try:
        with httpx.Client(timeout=min(5.0, timeout_s)) as client:

            def call(method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise httpx.TimeoutException("the MLflow look-up ran out of time")
                response = client.request(method, f"{base}/{path}", timeout=left, **kwargs)
                if response.status_code == 404:
                    return None
                response.raise_for_status()
                return dict(response.json())

            found = call("GET", "experiments/get-by-name", params={"experiment_name": name})
            if not found:
                return None
            experiment_id = found["experiment"]["experiment_id"]
            runs = call("POST", "runs/search", json={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`flops.project_id` = '{project_id}'",
                "order_by": ["attributes.start_time DESC"], "max_results": 20,
            }) or {}  # fmt: skip
            run = next((r for r in runs.get("runs", []) if not _is_cluster_run(r)), None)
            if run is None or run["info"].get("status") != "FINISHED":
                return None
            run_id = str(run["info"]["run_id"])
            versions = call(
                "GET", "model-versions/search", params={"filter": f"name='{name}'"}
            ) or {}  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError) as e:
        # httpx's messages hold the URL, which may hold credentials: name the error only.
        why = f"HTTP {e.response.status_code}" if isinstance(e, httpx.HTTPStatusError) else ""
        _log.warning(
            "project=%s cannot ask MLflow about the training: %s %s",
            project_id, type(e).__name__, why,
        )  # fmt: skip
        return None
    mine = [v for v in versions.get("model_versions", []) if v.get("run_id") == run_id]
    model = None
    if mine:
        newest = max(mine, key=lambda v: int(v["version"]))
        model = {
            "name": name, "version": str(newest["version"]), "run_id": run_id,
            "model_uri": f"models:/{name}/{newest['version']}",
        }  # fmt: skip
    metrics = {m["key"]: m for m in run.get("data", {}).get("metrics", [])}
    return {
        "confirmed_by": "mlflow",
        "mlflow_run_id": run_id,
        "rounds_logged": max((int(m.get("step", 0)) for m in metrics.values()), default=0),
        "metrics": {k: float(metrics[k]["value"]) for k in ("loss", "accuracy") if k in metrics},
        "model": model,
    }


def describe_confirmation(confirmed: dict[str, Any]) -> str:
    """What users read: the outcome event was lost, and what MLflow confirms instead."""
    model = confirmed.get("model") or {}
    accuracy = confirmed.get("metrics", {}).get("accuracy")
    return (
        "the aggregator exited with code 0 but its outcome event was lost; MLflow confirms "
        f"the training: run {confirmed['mlflow_run_id']} FINISHED after round "
        f"{confirmed['rounds_logged']}"
        + (f", last accuracy {accuracy:.3f}" if accuracy is not None else "")
        + (f", model {model['name']} version {model['version']}" if model else "")
    )


def _is_cluster_run(run: dict[str, Any]) -> bool:
    tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
    return tags.get("flops.role") == "cluster_aggregator"
