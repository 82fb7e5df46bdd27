"""MLflow tracking of one project: its run, per-round metrics and the registered best model.

One experiment per project and one run per aggregator run. Round metrics are logged
asynchronously (MLflow's own async logging queue) so that a slow tracking server does not
stretch the rounds; `finish()` flushes the queue. The best model is logged with the MLflow
module of the repo's flavor, registered under the project's model name, and given the alias
`champion`.

No wait on MLflow is unbounded: `mlflow_http_settings` caps each HTTP request and its retries
(MLflow's defaults retry for about 4 minutes, each request up to 120 s), and each step
(start, storing the model, closing the run) runs against a deadline of its own, after which
the run fails with a reason that names MLflow and its URL. A step that times out leaves its
thread behind; MLflow's request timeout ends it.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations

from flops_aggregator.config import MLFlavor
from flops_aggregator.errors import TrackingError
from flops_core.logs import get_logger
from flops_core.redact import redact_url

__all__ = ["CHAMPION_ALIAS", "MlflowTracker", "RegisteredModel", "mlflow_http_settings"]

CHAMPION_ALIAS = "champion"
_T = TypeVar("_T")

_log = get_logger("aggregator.tracking")

# MLflow module and log_model options per flavor. PyTorch is saved with pickle because the
# default `pt2` export needs an input example, which the aggregator (without data) lacks.
_FLAVORS: dict[MLFlavor, tuple[str, dict[str, Any]]] = {
    MLFlavor.SKLEARN: ("mlflow.sklearn", {}),
    MLFlavor.PYTORCH: ("mlflow.pytorch", {"serialization_format": "pickle"}),
    MLFlavor.TENSORFLOW: ("mlflow.tensorflow", {}),
    MLFlavor.KERAS: ("mlflow.tensorflow", {}),
}


def mlflow_http_settings(timeout_s: float) -> dict[str, str]:
    """MLflow's client settings (environment variables) that bound each HTTP request.

    A request may wait a third of `timeout_s` for an answer and is tried three times (after 1
    and 2 s), so that a tracking server that restarts is waited for, and a request to one that
    stopped answering ends about when the step's own deadline does (MLflow's background
    sender of round metrics, which the process waits for at exit, included).
    """
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_s / 3))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    }


class RegisteredModel:
    """A model version in the registry: name, version, alias and the run that logged it."""

    def __init__(self, name: str, version: str, run_id: str, model_uri: str) -> None:
        self.name = name
        self.version = version
        self.run_id = run_id
        self.model_uri = model_uri

    def as_dict(self) -> dict[str, str]:
        """The fields reported in the `succeeded` event."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": CHAMPION_ALIAS,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
        }


class MlflowTracker:
    """Log one project's training to an MLflow tracking server.

    Parameters
    ----------
    tracking_uri : str
        The tracking server, e.g. `http://127.0.0.1:5000`.
    experiment : str
        Experiment name (one per project).
    project_id : str
        Tagged on the run and used in log lines.
    timeout_s : float
        Seconds each step (start, storing the model, closing the run) may wait for MLflow.
    """

    def __init__(
        self, *, tracking_uri: str, experiment: str, project_id: str, timeout_s: float = 60.0
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.project_id = project_id
        self.timeout_s = timeout_s
        self._shown_uri = redact_url(tracking_uri)  # for messages: no credentials
        self._unanswered = False  # a step ran out of time: MLflow is not answering
        self.run_id: str | None = None
        self._pending: list[RunOperations] = []
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def start(
        self, *, params: Mapping[str, Any], tags: Mapping[str, str], run_name: str | None = None
    ) -> str:
        """Check the server, create the experiment if needed, start the run; return its id.

        The run is named `run_name`, by default `<project id>-<unix time>`.
        """
        self._check_reachable()

        def start() -> str:
            experiment_id = self._experiment_id()
            run = self._client.create_run(
                experiment_id, run_name=run_name or f"{self.project_id}-{int(time.time())}"
            )
            self.run_id = run.info.run_id  # closed as FAILED if what follows fails
            self._client.log_batch(
                run.info.run_id,
                params=[Param(k, _param_value(v)) for k, v in params.items()],
                tags=[
                    RunTag(k, v) for k, v in {**tags, "flops.project_id": self.project_id}.items()
                ],
            )
            return str(run.info.run_id)

        try:
            run_id = self._bounded("starting the run", start)
        except MlflowException as e:
            raise TrackingError(f"MLflow at {self._shown_uri} refused the run: {e}") from e
        _log.info("project=%s mlflow run %s in %s", self.project_id, run_id, self.experiment)
        return run_id

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Queue `metrics` at `step` (the round); does not wait for the server."""
        now = int(time.time() * 1000)
        self._queue(metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags (queued like metrics)."""
        self._queue(tags=[RunTag(k, v) for k, v in tags.items()])

    def log_model(
        self,
        *,
        model: Any,
        flavor: MLFlavor,
        registered_name: str,
        code_paths: list[str] | None = None,
        pip_requirements: list[str] | None = None,
    ) -> RegisteredModel:
        """Log `model` with the flavor's MLflow module, register it, alias it `champion`.

        Parameters
        ----------
        code_paths : list[str] | None
            The repo's Python modules, stored with the model so that it loads without the
            repo (a pickled PyTorch model needs the module that defines its class).
        pip_requirements : list[str] | None
            The repo's declared dependencies; `None` lets MLflow infer them, which is slow
            (it reloads the model in a subprocess) and picks up unrelated packages.
        """
        module_name, options = _FLAVORS[flavor]
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise TrackingError(f"cannot log a {flavor} model: {module_name} unavailable") from e
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        run_id = self._run()

        def store() -> tuple[Any, str]:
            with mlflow.start_run(run_id=run_id):
                info = module.log_model(
                    model,
                    name="model",
                    registered_model_name=registered_name,
                    code_paths=code_paths,
                    pip_requirements=pip_requirements,
                    **options,
                )
            version = str(info.registered_model_version)
            self._client.set_registered_model_alias(registered_name, CHAMPION_ALIAS, version)
            return info, version

        try:
            info, version = self._bounded("storing and registering the model", store)
        except MlflowException as e:
            raise TrackingError(
                f"MLflow at {self._shown_uri} could not store the trained model: {e}"
            ) from e
        _log.info(
            "project=%s registered model %s version %s as %s",
            self.project_id,
            registered_name,
            version,
            CHAMPION_ALIAS,
        )
        return RegisteredModel(registered_name, version, self._run(), info.model_uri)

    def finish(self, *, succeeded: bool, killed: bool = False) -> None:
        """Flush queued metrics and close the run as FINISHED, FAILED or KILLED."""
        run_id = self.run_id
        if run_id is None:
            return
        if self._unanswered:
            _log.warning(
                "project=%s MLflow at %s did not answer before; run %s is left as it is",
                self.project_id, self._shown_uri, run_id,
            )  # fmt: skip
            return
        pending, self._pending = self._pending, []
        status = "FINISHED" if succeeded else "KILLED" if killed else "FAILED"

        def close() -> None:
            for operations in pending:
                operations.wait()  # type: ignore[no-untyped-call]
            self._client.set_terminated(run_id, status)

        try:
            self._bounded("sending the round metrics and closing the run", close)
        except (MlflowException, TrackingError) as e:
            _log.warning("project=%s could not close the MLflow run: %s", self.project_id, e)

    def _bounded(self, doing: str, step: Callable[[], _T]) -> _T:
        """Run `step` on a thread of its own; `TrackingError` if it takes over `timeout_s`.

        Its exceptions are raised here. On a timeout the thread (a daemon, so that it does not
        hold up the process's exit) ends when MLflow's own request timeout ends its request.
        """
        outcome: list[_T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(step())
            except BaseException as e:  # handed to the caller's thread
                failure.append(e)

        worker = threading.Thread(target=run, name=f"mlflow: {doing}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            self._unanswered = True
            raise TrackingError(
                f"MLflow at {self._shown_uri} did not answer within {self.timeout_s:g} s "
                f"while {doing}"
            )
        if failure:
            raise failure[0]
        return outcome[0]

    def _experiment_id(self) -> str:
        """The project's experiment, created if needed.

        The aggregators of a hierarchical project (root and clusters) start at the same time,
        so another one may create the experiment between our lookup and our create.
        """
        experiment = self._client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return self._client.create_experiment(self.experiment)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = self._client.get_experiment_by_name(self.experiment)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def _queue(self, **batch: Any) -> None:
        operations = self._client.log_batch(self._run(), synchronous=False, **batch)
        if operations is not None:
            self._pending.append(operations)

    def _run(self) -> str:
        if self.run_id is None:
            raise TrackingError("the MLflow run was not started")
        return self.run_id

    def _check_reachable(self) -> None:
        if not self.tracking_uri.startswith(("http://", "https://")):
            return
        try:
            httpx.get(
                f"{self.tracking_uri.rstrip('/')}/health", timeout=min(10.0, self.timeout_s)
            ).raise_for_status()
        except httpx.HTTPError as e:
            raise TrackingError(
                f"MLflow tracking server at {self._shown_uri} is unreachable ({e}); "
                f"start it or correct the tracking URI"
            ) from e


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:6000]
