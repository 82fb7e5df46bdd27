"""Every wait on MLflow ends, naming MLflow, when the tracking server stops answering."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from sklearn.linear_model import LogisticRegression

from flops_aggregator.config import MLFlavor
from flops_aggregator.errors import TrackingError
from flops_aggregator.tracking import MlflowTracker, mlflow_http_settings

BOUND_S = 2


@pytest.fixture
def frozen_mlflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server that accepts connections and never answers, as a SIGSTOPped MLflow does."""
    for name, value in mlflow_http_settings(BOUND_S).items():
        monkeypatch.setenv(name, value)  # as the aggregator's CLI sets them
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(128)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _tracker(url: str) -> MlflowTracker:
    tracker = MlflowTracker(tracking_uri=url, experiment="e", project_id="p", timeout_s=BOUND_S)
    tracker.run_id = "0" * 32  # the run was started while MLflow still answered
    return tracker


@pytest.mark.timeout(60)
def test_storing_the_model_fails_naming_mlflow_within_the_bound(frozen_mlflow: str) -> None:
    # Prepare
    tracker = _tracker(frozen_mlflow)

    # Execute
    with pytest.raises(TrackingError) as raised:
        tracker.log_model(
            model=LogisticRegression(), flavor=MLFlavor.SKLEARN, registered_name="m",
            pip_requirements=["scikit-learn"],
        )  # fmt: skip

    # Assert
    assert str(raised.value) == (
        f"MLflow at {frozen_mlflow} did not answer within {BOUND_S} s while storing and "
        "registering the model"
    )


@pytest.mark.timeout(60)
def test_closing_the_run_with_queued_metrics_gives_up_naming_mlflow(
    frozen_mlflow: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: round metrics queued for MLflow's background sender
    tracker = _tracker(frozen_mlflow)
    tracker.log_metrics(1, {"accuracy": 0.5})

    # Execute
    with caplog.at_level(logging.WARNING):
        tracker.finish(succeeded=False)

    # Assert: the run is left as it is, and the log says why
    assert (
        f"could not close the MLflow run: MLflow at {frozen_mlflow} did not answer within "
        f"{BOUND_S} s while sending the round metrics and closing the run"
    ) in caplog.text
