"""Confirming a lost outcome from MLflow: nothing is confirmed when MLflow cannot say."""

from __future__ import annotations

from flops_manager.lifecycle.mlflow_outcome import confirmed_training, describe_confirmation
from tests.conftest import free_port


def test_an_unreachable_tracking_server_confirms_nothing() -> None:
    assert confirmed_training(f"http://127.0.0.1:{free_port()}", "p1", timeout_s=2) is None


def test_the_description_says_the_event_was_lost_and_what_mlflow_holds() -> None:
    text = describe_confirmation({
        "mlflow_run_id": "r1", "rounds_logged": 2000, "metrics": {"accuracy": 0.9612},
        "model": {"name": "flops-p1", "version": "3"},
    })  # fmt: skip
    assert text == (
        "the aggregator exited with code 0 but its outcome event was lost; MLflow confirms the "
        "training: run r1 FINISHED after round 2000, last accuracy 0.961, model flops-p1 "
        "version 3"
    )
