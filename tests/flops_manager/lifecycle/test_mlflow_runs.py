"""Ending a project's open MLflow runs never holds the project up when MLflow is down."""

from __future__ import annotations

import logging
import socket

import pytest

from flops_manager.lifecycle.mlflow_runs import end_running_runs
from tests.conftest import free_port


def test_mlflow_down_is_logged_and_nothing_raised(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://user:pw@127.0.0.1:{free_port()}"

    with caplog.at_level(logging.WARNING, logger="flops"):
        ended = end_running_runs(url, "p1", "FAILED", timeout=2.0)

    assert ended == []
    assert "cannot end its RUNNING MLflow runs" in caplog.text
    assert "user:pw" not in caplog.text


def test_mlflow_that_never_answers_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    # A listening socket that accepts connections (the backlog) but never answers
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(8)
        url = f"http://127.0.0.1:{frozen.getsockname()[1]}"

        with caplog.at_level(logging.WARNING, logger="flops"):
            ended = end_running_runs(url, "p1", "KILLED", timeout=1.0)

    assert ended == []
    assert "cannot end its RUNNING MLflow runs" in caplog.text
