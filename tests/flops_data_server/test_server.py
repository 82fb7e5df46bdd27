"""The ML data server on the wire (as original FLOps clients call it) and its command line."""

import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flops_data_server import MLDataServer
from flops_data_server.cli import app
from flops_utils.ml_data_client import DataServerUnavailableError, MLDataClient
from tests.conftest import eventually

StartServer = Callable[[], MLDataServer]  # the `start_server` fixture of conftest.py


def put(client: flight.FlightClient, name: str, table: pa.Table) -> None:
    """Upload `table` under the descriptor path `name`, as the original mock provider did."""
    writer, _ = client.do_put(flight.FlightDescriptor.for_path(name), table.schema)
    writer.write_table(table)
    writer.close()


def original_learner_fetch(client: flight.FlightClient, data_tags: list[str]) -> list[pa.Table]:
    """Fetch tables exactly as the original FLOps learner did."""
    flights = client.list_flights(criteria=json.dumps({"data_tags": data_tags}).encode("utf-8"))
    return [client.do_get(f.endpoints[0].ticket).read_all() for f in flights]


def test_original_clients_round_trip_tables_by_tag(flight_client: flight.FlightClient) -> None:
    # Prepare
    put(flight_client, f"mnist.{uuid.uuid4().hex}.parquet", pa.table({"x": [1, 2]}))
    put(flight_client, f"mnist.{uuid.uuid4().hex}.parquet", pa.table({"x": [3]}))
    put(flight_client, f"cifar.{uuid.uuid4().hex}.parquet", pa.table({"x": [99]}))

    # Execute
    tables = original_learner_fetch(flight_client, ["mnist"])

    # Assert
    assert sorted(pa.concat_tables(tables).column("x").to_pylist()) == [1, 2, 3]


def test_listing_describes_each_dataset(
    data_server: MLDataServer, flight_client: flight.FlightClient
) -> None:
    # Prepare
    name = f"mnist.{uuid.uuid4().hex}.parquet"
    table = pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    put(flight_client, name, table)

    # Execute
    [info] = flight_client.list_flights(json.dumps({"data_tags": ["mnist"]}).encode())

    # Assert
    assert info.descriptor.path == [name.encode()]
    assert [e.ticket.ticket for e in info.endpoints] == [name.encode()]
    assert info.endpoints[0].locations == [flight.Location(data_server.location)]
    assert (info.schema, info.total_records) == (table.schema, 3)
    assert info.total_bytes > 0
    assert flight_client.get_flight_info(info.descriptor).total_records == 3


def test_empty_criteria_lists_every_dataset(flight_client: flight.FlightClient) -> None:
    # Prepare
    put(flight_client, "mnist", pa.table({"x": [1]}))
    put(flight_client, "cifar", pa.table({"x": [2]}))

    # Execute
    names = [f.descriptor.path[0].decode() for f in flight_client.list_flights()]

    # Assert
    assert sorted(name.split(".")[0] for name in names) == ["cifar", "mnist"]


def test_bare_tag_uploads_are_kept_apart(flight_client: flight.FlightClient) -> None:
    # Execute
    put(flight_client, "mnist", pa.table({"x": [1]}))
    put(flight_client, "mnist", pa.table({"x": [2]}))

    # Assert
    names = [f.descriptor.path[0].decode() for f in flight_client.list_flights()]
    assert len(set(names)) == 2
    assert all(n.startswith("mnist.") and n.endswith(".parquet") for n in names)


def test_restarted_server_serves_stored_data(start_server: StartServer, data_dir: Path) -> None:
    # Prepare
    first = start_server()
    with flight.connect(f"grpc://127.0.0.1:{first.port}") as client:
        put(client, f"mnist.{uuid.uuid4().hex}.parquet", pa.table({"x": [7, 8]}))
    first.shutdown()
    (data_dir / ".mnist.abc.parquet.0123.tmp").write_bytes(b"half an upload")

    # Execute
    second = start_server()
    with flight.connect(f"grpc://127.0.0.1:{second.port}") as client:
        tables = original_learner_fetch(client, ["mnist"])

    # Assert
    assert [t.column("x").to_pylist() for t in tables] == [[7, 8]]
    assert not list(data_dir.glob("*.tmp"))


@pytest.mark.parametrize(
    "name", ["../mnist.abc.parquet", "sub/mnist.parquet", "sub\\mnist.parquet", ".abc.parquet"]
)
def test_unsafe_dataset_names_are_rejected(
    flight_client: flight.FlightClient, tmp_path: Path, name: str
) -> None:
    # Execute
    with pytest.raises(flight.FlightServerError, match="invalid dataset name"):
        put(flight_client, name, pa.table({"x": [1]}))

    # Assert
    assert list(flight_client.list_flights()) == []
    assert not list(tmp_path.glob("**/*.parquet"))


@pytest.mark.parametrize("criteria", [b"{not json", b'{"data_tags": "mnist"}', b'["mnist"]'])
def test_malformed_criteria_say_what_is_expected(
    flight_client: flight.FlightClient, criteria: bytes
) -> None:
    # Execute / Assert
    with pytest.raises(flight.FlightServerError, match='"data_tags"'):
        list(flight_client.list_flights(criteria))


def test_unknown_dataset_names_are_reported(flight_client: flight.FlightClient) -> None:
    # Execute / Assert
    with pytest.raises(flight.FlightServerError, match=r"'mnist\.nope\.parquet' not found"):
        flight_client.do_get(flight.Ticket(b"mnist.nope.parquet")).read_all()
    with pytest.raises(flight.FlightServerError, match=r"'mnist\.nope\.parquet' not found"):
        list(flight_client.do_action(flight.Action("drop_dataset", b"mnist.nope.parquet")))


def test_drop_dataset_action_deletes_it(flight_client: flight.FlightClient) -> None:
    # Prepare
    name = f"mnist.{uuid.uuid4().hex}.parquet"
    put(flight_client, name, pa.table({"x": [1]}))

    # Execute
    list(flight_client.do_action(flight.Action("drop_dataset", name.encode())))

    # Assert
    assert list(flight_client.list_flights()) == []
    assert [a.type for a in flight_client.list_actions()] == ["drop_dataset"]


def test_advertised_host_is_put_into_endpoints(data_dir: Path) -> None:
    # Execute
    server = MLDataServer(data_dir, host="127.0.0.1", port=0, advertise_host="node-7.local")
    server.shutdown()

    # Assert
    assert server.location == f"grpc+tcp://node-7.local:{server.port}"


# --- command line ---------------------------------------------------------------------------


def test_cli_pushes_csv_lists_and_drops(data_server: MLDataServer, tmp_path: Path) -> None:
    # Prepare
    runner = CliRunner()
    server = f"127.0.0.1:{data_server.port}"
    csv = tmp_path / "iris.csv"
    csv.write_text("sepal,species\n5.1,setosa\n4.9,setosa\n6.3,virginica\n")

    # Execute
    pushed = runner.invoke(app, ["push", str(csv), "--tag", "iris", "--server", server])
    listed = runner.invoke(app, ["list", "--tag", "iris", "--server", server])
    with MLDataClient(server) as client:
        [info] = client.list_datasets(["iris"])
        dropped = runner.invoke(app, ["drop", info.name, "--server", server])
        remaining = client.list_datasets()

    # Assert
    assert pushed.exit_code == 0, pushed.output
    assert info.name in pushed.output and info.rows == 3
    assert listed.exit_code == 0 and info.name in listed.output and "iris" in listed.output
    assert dropped.exit_code == 0
    assert remaining == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["push", "data.json", "--tag", "iris"], "data.json"),
        (["drop", "iris.nope.parquet"], "'iris.nope.parquet' not found"),
        (["list", "--server", "127.0.0.1:1"], "flops-data-server serve"),
    ],
)
def test_cli_errors_are_one_line_with_status_1(
    data_server: MLDataServer, args: list[str], message: str
) -> None:
    # Prepare
    if "--server" not in args:
        args = [*args, "--server", f"127.0.0.1:{data_server.port}"]

    # Execute
    result = CliRunner().invoke(app, args)

    # Assert
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(address: str, proc: subprocess.Popen[str]) -> None:
    eventually(
        lambda: _serving(address), f"the data server serving at {address}", 15, interval=0.05,
        retry_on=(DataServerUnavailableError,),
        give_up=lambda: None if proc.poll() is None else f"it exited with {proc.returncode}",
    )  # fmt: skip


def _serving(address: str) -> bool:
    with MLDataClient(address) as client:
        client.list_datasets()
    return True


@pytest.mark.e2e
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_server_serves_pushed_data_and_stops_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    # Prepare
    port = _free_port()
    address = f"127.0.0.1:{port}"
    cli = [sys.executable, "-m", "flops_data_server"]
    serve_args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*cli, *serve_args, "--data-dir", str(tmp_path / "data")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_serving(address, server)
        parquet = tmp_path / "part.parquet"
        pq.write_table(pa.table({"x": [1, 2, 3]}), parquet)

        # Execute
        push = subprocess.run(
            [*cli, "push", str(parquet), "--tag", "demo", "--server", address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        with MLDataClient(address) as client:
            rows = client.fetch_table(["demo"]).num_rows
        server.send_signal(stop_signal)
        _, log = server.communicate(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()

    # Assert
    assert push.returncode == 0, push.stderr
    assert rows == 3
    assert server.returncode == 0, log
    assert "ready" in log and "stopped" in log
