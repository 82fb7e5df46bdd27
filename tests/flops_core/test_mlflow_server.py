"""The one MLflow launch: a lean server (one worker, no job execution) and its health probe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flops_core.mlflow_server import check_mlflow, mlflow_server_launch
from tests.conftest import free_port


def test_the_launch_is_one_worker_without_job_execution_on_the_given_store(
    tmp_path: Path,
) -> None:
    # Execute
    launch = mlflow_server_launch(tmp_path, port=5123, python="/opt/py/bin/python")

    # Assert
    assert launch.command == (
        "/opt/py/bin/python", "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", "5123",
        "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination", str(tmp_path / "artifacts"),
    )  # fmt: skip
    assert launch.env == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    assert launch.url == "http://127.0.0.1:5123"


def test_the_launch_listens_where_it_is_told() -> None:
    launch = mlflow_server_launch(Path("/srv/mlflow"), port=80, host="0.0.0.0")

    assert launch.command[4:8] == ("--host", "0.0.0.0", "--port", "80")
    assert launch.url == "http://0.0.0.0:80"


@pytest.fixture
def health_server() -> Iterator[tuple[str, list[int]]]:
    """A tiny HTTP server whose `/health` answers with the status code in the list."""
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", status
    server.shutdown()
    server.server_close()


def test_the_probe_says_healthy_unhealthy_or_not_answering(
    health_server: tuple[str, list[int]],
) -> None:
    # Prepare
    url, status = health_server
    closed = f"http://127.0.0.1:{free_port()}"

    # Execute
    healthy = check_mlflow(url)
    status[0] = 503
    unhealthy = check_mlflow(url)
    silent = check_mlflow(closed, timeout=1.0)

    # Assert
    assert healthy == (True, f"MLflow at {url}")
    assert unhealthy == (False, f"MLflow at {url} is unhealthy")
    assert silent == (False, f"MLflow at {closed} is not answering (ConnectError)")
