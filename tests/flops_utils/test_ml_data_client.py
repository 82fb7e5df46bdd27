"""The ML data client and `load_dataset()` against a real data server on a loopback port."""

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from flops_data_server import MLDataServer
from flops_utils import ml_repo_building_blocks
from flops_utils.ml_data_client import (
    DataFileError,
    DataServerUnavailableError,
    DatasetNotFoundError,
    InvalidRequestError,
    MLDataClient,
    NoDataForTagsError,
    SchemaMismatchError,
)
from flops_utils.ml_repo_building_blocks import (
    DataSourceNotConfiguredError,
    configure_data_source,
    load_dataset,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MLDataServer]:
    """A running data server with its own data directory."""
    data_server = MLDataServer(tmp_path / "ml_data", host="127.0.0.1", port=0)
    yield data_server
    data_server.shutdown()


@pytest.fixture
def client(server: MLDataServer) -> Iterator[MLDataClient]:
    """A client of `server`, addressed as `host:port` like a user would type it."""
    with MLDataClient(f"127.0.0.1:{server.port}") as data_client:
        yield data_client


@pytest.fixture
def no_data_source() -> Iterator[None]:
    """Leave `load_dataset()` unconfigured before and after the test."""
    ml_repo_building_blocks.clear_data_source()
    yield
    ml_repo_building_blocks.clear_data_source()


@pytest.fixture
def unused_address() -> str:
    """An address on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_pushed_tables_come_back_by_tag(client: MLDataClient) -> None:
    # Prepare
    client.push_table("mnist", pa.table({"x": [1, 2]}))
    client.push_table("mnist", pa.table({"x": [3]}))
    client.push_table("fashion", pa.table({"x": [4]}))
    client.push_table("cifar", pa.table({"x": [99]}))

    # Execute
    table = client.fetch_table(["mnist", "fashion"])

    # Assert
    assert sorted(table.column("x").to_pylist()) == [1, 2, 3, 4]


def test_listing_shows_name_tag_rows_and_size(client: MLDataClient) -> None:
    # Prepare
    name = client.push_table("mnist", pa.table({"x": list(range(5))}))
    client.push_table("cifar", pa.table({"x": [1]}))

    # Execute
    [info] = client.list_datasets(["mnist"])

    # Assert
    assert (info.name, info.tag, info.rows) == (name, "mnist", 5)
    assert name.startswith("mnist.") and name.endswith(".parquet")
    assert info.bytes > 0
    assert len(client.list_datasets()) == 2


def test_push_file_reads_parquet_and_csv(client: MLDataClient, tmp_path: Path) -> None:
    # Prepare
    parquet, csv = tmp_path / "a.parquet", tmp_path / "b.csv"
    pq.write_table(pa.table({"x": [1, 2]}), parquet)
    csv.write_text("x\n3\n")

    # Execute
    client.push_file("mnist", parquet)
    client.push_file("mnist", str(csv))

    # Assert
    assert sorted(client.fetch_table(["mnist"]).column("x").to_pylist()) == [1, 2, 3]


@pytest.mark.parametrize("file_name", ["data.json", "missing.csv"])
def test_push_file_names_a_file_it_cannot_push(
    client: MLDataClient, tmp_path: Path, file_name: str
) -> None:
    # Prepare
    path = tmp_path / file_name
    if path.suffix == ".json":
        path.write_text("[]")

    # Execute / Assert
    with pytest.raises(DataFileError, match=re.escape(file_name)):
        client.push_file("mnist", path)


@pytest.mark.parametrize("tag", ["", "a.b", "../x", "a\\b"])
def test_unusable_data_tags_are_refused(client: MLDataClient, tag: str) -> None:
    # Execute / Assert
    with pytest.raises(InvalidRequestError, match="invalid data tag"):
        client.push_table(tag, pa.table({"x": [1]}))


def test_missing_data_names_tags_and_server(client: MLDataClient) -> None:
    # Prepare
    client.push_table("cifar", pa.table({"x": [1]}))

    # Execute / Assert
    with pytest.raises(NoDataForTagsError, match=r"\['mnist'\].*" + re.escape(client.address)):
        client.fetch_table(["mnist"])


def test_missing_customer_data_points_at_shared_data_of_that_name(client: MLDataClient) -> None:
    # Prepare: the original FLOps mock provider pushes plain tags; a project of customer
    # Admin reads its own namespace, `Admin:mnist`.
    client.push_table("mnist", pa.table({"x": [1]}))

    # Execute / Assert
    with pytest.raises(NoDataForTagsError, match=r"\['mnist'\].*name it 'shared:mnist'"):
        client.fetch_table(["Admin:mnist"])


def test_incompatible_tables_are_reported(client: MLDataClient) -> None:
    # Prepare
    client.push_table("mnist", pa.table({"x": [1]}))
    client.push_table("mnist", pa.table({"y": ["a"]}))

    # Execute / Assert
    with pytest.raises(SchemaMismatchError, match="different schemas"):
        client.fetch_table(["mnist"])


def test_dropped_dataset_is_gone(client: MLDataClient) -> None:
    # Prepare
    name = client.push_table("mnist", pa.table({"x": [1]}))

    # Execute
    client.drop_dataset(name)

    # Assert
    assert client.list_datasets() == []
    with pytest.raises(DatasetNotFoundError, match=re.escape(name)):
        client.drop_dataset(name)


def test_unreachable_server_says_what_to_do(unused_address: str) -> None:
    # Prepare
    client = MLDataClient(unused_address)

    # Execute
    with pytest.raises(DataServerUnavailableError) as caught:
        client.list_datasets(["mnist"])

    # Assert
    assert f"grpc://{unused_address}" in str(caught.value)
    assert "flops-data-server serve" in str(caught.value)
    assert isinstance(caught.value.__cause__, flight.FlightUnavailableError)
    assert caught.value.retryable


@pytest.mark.usefixtures("no_data_source")
def test_load_dataset_returns_all_rows_of_the_tags(client: MLDataClient) -> None:
    # Prepare
    labels = datasets.Features({"label": datasets.ClassLabel(names=["cat", "dog"])})
    part = datasets.Dataset.from_dict({"label": [0, 1, 1]}, features=labels)
    client.push_table("pets", part.data.table)
    client.push_table("pets", part.data.table.slice(0, 1))
    client.push_table("cars", pa.table({"label": [7]}))
    configure_data_source(client.address, ["pets"])

    # Execute
    dataset = load_dataset()

    # Assert
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.num_rows == 4
    assert dataset.features == labels
    assert isinstance(dataset[:], pa.Table)
    assert sorted(dataset[:]["label"].to_pylist()) == [0, 0, 1, 1]


@pytest.mark.usefixtures("no_data_source")
def test_load_dataset_without_data_source_explains_setup() -> None:
    # Execute / Assert
    with pytest.raises(DataSourceNotConfiguredError, match="configure_data_source"):
        load_dataset()


@pytest.mark.usefixtures("no_data_source")
def test_load_dataset_reports_unreachable_server(unused_address: str) -> None:
    # Prepare
    configure_data_source(unused_address, ["mnist"])

    # Execute / Assert
    with pytest.raises(DataServerUnavailableError, match=re.escape(unused_address)):
        load_dataset()


class _StallingServer(MLDataServer):
    """A real data server whose downloads stall until `release` is set (a frozen node)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> object:
        self.release.wait(30)
        return super().do_get(context, ticket)


@pytest.mark.usefixtures("no_data_source")
def test_load_dataset_gives_up_on_a_server_that_stops_answering_mid_download(
    tmp_path: Path,
) -> None:
    # Prepare: data on a server that lists it but never sends it
    server = _StallingServer(tmp_path / "ml_data", host="127.0.0.1", port=0)
    try:
        with MLDataClient(f"127.0.0.1:{server.port}") as data_client:
            data_client.push_table("pets", pa.table({"label": [0, 1]}))
        configure_data_source(f"127.0.0.1:{server.port}", ["pets"], fetch_timeout_s=1.0)

        # Execute / Assert: a clear error naming the server, not a hang
        with pytest.raises(DataServerUnavailableError, match=f"127.0.0.1:{server.port}"):
            load_dataset()
    finally:
        server.release.set()
        server.shutdown()
