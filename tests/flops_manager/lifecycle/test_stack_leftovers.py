"""A port the shared services need but another program holds is named with its setting."""

from __future__ import annotations

import os
import socket

from flops_manager.lifecycle.stack_leftovers import port_problem
from tests.conftest import free_port


def test_a_free_port_is_no_problem() -> None:
    assert port_problem("127.0.0.1", free_port(), "MLflow", "FLOPS_MLFLOW_PORT") is None


def test_a_taken_port_names_the_port_its_holder_and_the_setting() -> None:
    # Prepare: another program listens where MLflow would
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        # Execute
        problem = port_problem("127.0.0.1", port, "MLflow", "FLOPS_MLFLOW_PORT")

    # Assert
    assert problem is not None
    assert problem.startswith(f"MLflow cannot listen on 127.0.0.1:{port}: ")
    assert f"held by pid {os.getpid()} (" in problem
    assert problem.endswith("stop that program or set FLOPS_MLFLOW_PORT to a free port")


def test_an_ipv6_listener_on_the_loopback_port_is_found_too() -> None:
    # gRPC (the data servers) listens on IPv6 sockets bound to ::ffff:127.0.0.1
    with socket.socket(socket.AF_INET6) as other:
        other.bind(("::ffff:127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        problem = port_problem("127.0.0.1", port, "the data server of node 0", "SETTING")

    assert problem is not None and f"held by pid {os.getpid()} (" in problem


def test_an_ipv6_host_is_probed_as_ipv6() -> None:
    # Prepare: a port held on ::1 only
    with socket.socket(socket.AF_INET6) as other:
        other.bind(("::1", 0))
        other.listen()
        port = other.getsockname()[1]

        # Execute
        taken = port_problem("::1", port, "MLflow", "FLOPS_MLFLOW_PORT")

    free = port_problem("::1", port, "MLflow", "FLOPS_MLFLOW_PORT")

    # Assert
    assert taken is not None and f"MLflow cannot listen on ::1:{port}" in taken
    assert free is None
