"""A project's training outcome as MLflow records it, for when the aggregator's event was lost.

An aggregator that exits with code 0 has finished its MLflow run (FINISHED) and registered
the best model before it reported `succeeded`; if that event never reached the manager (a
network fault, a manager too busy to answer), MLflow still says what happened. The look-up
uses MLflow's REST API with a deadline, so a slow or absent tracking server costs the
project at most `timeout_s` seconds before it is failed as it would have been without it.
"""

from __future__ import annotations

from typing import Any

from flops_core.logs import get_logger
from flops_manager.lifecycle.mlflow_rest import MlflowSession, MlflowUnavailable, experiment_name

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
    name = experiment_name(project_id)
    try:
        with MlflowSession(tracking_url, timeout_s=timeout_s, request_timeout_s=5.0) as mlflow:
            experiment_id = mlflow.experiment_id(project_id)
            if experiment_id is None:
                return None
            runs = mlflow.search_runs(
                experiment_id, filter=f"tags.`flops.project_id` = '{project_id}'",
                order_by=["attributes.start_time DESC"], max_results=20,
            )  # fmt: skip
            run = next((r for r in runs if not _is_cluster_run(r)), None)
            if run is None or run["info"].get("status") != "FINISHED":
                return None
            run_id = str(run["info"]["run_id"])
            versions = mlflow.call(
                "GET", "model-versions/search", params={"filter": f"name='{name}'"}
            ) or {}  # fmt: skip
    except (MlflowUnavailable, KeyError, TypeError) as e:
        _log.warning(
            "project=%s cannot ask MLflow about the training: %s", project_id,
            e if isinstance(e, MlflowUnavailable) else f"unexpected reply ({type(e).__name__})",
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
