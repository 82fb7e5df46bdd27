"""The manager's embedded stack and the tests' `start_mlflow_server` start the same MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_core.mlflow_server import check_mlflow, start_mlflow_server
from flops_manager.lifecycle.embedded_stack import EmbeddedStack
from flops_manager.orchestrators import LocalOrchestrator
from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def _process(pid: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of process `pid`."""
    proc = Path(f"/proc/{pid}")
    argv = proc.joinpath("cmdline").read_bytes().decode().split("\0")[:-1]
    pairs = (
        item.partition("=") for item in proc.joinpath("environ").read_bytes().decode().split("\0")
    )
    return argv, {key: value for key, _, value in pairs if key}


def _generic(argv: list[str], store: Path, port: int) -> list[str]:
    """`argv` with its store folder and port replaced by placeholders."""
    return [arg.replace(str(store), "<store>").replace(str(port), "<port>") for arg in argv]


def test_the_manager_and_the_tests_run_the_same_lean_mlflow_server(tmp_path: Path) -> None:
    # Prepare
    stack_port, own_port = free_port(), free_port()
    orchestrator = LocalOrchestrator(tmp_path / "services")
    stack = EmbeddedStack(
        orchestrator=orchestrator, data_dir=tmp_path / "manager", mlflow_port=stack_port,
        data_server_port=free_port(), nodes=0,
    )  # fmt: skip
    own = None
    try:
        # Execute: the manager's way (a supervised service) and the tests' way (a child)
        stack.ensure_started()
        own = start_mlflow_server(tmp_path / "own", port=own_port)

        # Assert: both answer and run the same command with the same settings
        service = orchestrator.list_services(project_id="system")[0]
        stack_argv, stack_env = _process(service.pids[0])
        own_argv, own_env = _process(own.process.pid)
        assert check_mlflow(stack.tracking_url) == (True, f"MLflow at {stack.tracking_url}")
        assert check_mlflow(own.url) == (True, f"MLflow at {own.url}")
        assert _generic(stack_argv, tmp_path / "manager" / "mlflow", stack_port) == _generic(
            own_argv, tmp_path / "own", own_port
        )
        assert "--workers" in own_argv and own_argv[own_argv.index("--workers") + 1] == "1"
        assert stack_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
        assert own_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    finally:
        stack.stop()
        orchestrator.close()
        if own is not None:
            own.stop()
