"""Fixtures for the data server tests: real servers on free loopback ports in temp dirs."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.flight as flight
import pytest

from flops_data_server import MLDataServer

StartServer = Callable[[], MLDataServer]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The data directory the servers of one test share."""
    return tmp_path / "ml_data"


@pytest.fixture
def start_server(data_dir: Path) -> Iterator[StartServer]:
    """Start servers on `data_dir` (several for restart tests); all are shut down after."""
    servers: list[MLDataServer] = []

    def start() -> MLDataServer:
        server = MLDataServer(data_dir, host="127.0.0.1", port=0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()  # a second shutdown of a server a test stopped is harmless


@pytest.fixture
def data_server(start_server: StartServer) -> MLDataServer:
    """One running data server."""
    return start_server()


@pytest.fixture
def flight_client(data_server: MLDataServer) -> Iterator[flight.FlightClient]:
    """A plain Arrow Flight client of `data_server`, as the original FLOps learner used."""
    client = flight.connect(f"grpc://127.0.0.1:{data_server.port}")
    yield client
    client.close()
