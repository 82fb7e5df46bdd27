"""Arrow Flight client of the ML data server, shared by learners, CLIs and mock data providers."""

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, NoReturn, Self

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.flight as flight
import pyarrow.parquet as pq

__all__ = [
    "DEFAULT_DATA_SERVER_PORT",
    "DROP_DATASET_ACTION",
    "DataFileError",
    "DataServerRequestError",
    "DataServerUnavailableError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "InvalidRequestError",
    "MLDataClient",
    "MLDataError",
    "NoDataForTagsError",
    "SchemaMismatchError",
]

# The SDK imports nothing else of FLOps; its records join the `flops.*` logger tree.
logger = logging.getLogger("flops.ml_data_client")

#: The port an ML data server listens on unless told otherwise.
DEFAULT_DATA_SERVER_PORT = 11027
#: The Flight action that deletes a dataset; its body is the dataset name.
DROP_DATASET_ACTION = "drop_dataset"

_START_HINT = "is `flops-data-server serve` running there and reachable?"


class MLDataError(Exception):
    """Base of every error the ML data client raises; `retryable` says if a retry may help.

    A standalone tree, not a `flops_core.errors.FlopsError`: the SDK that ML repos import
    imports nothing of FLOps (`tests/test_layers.py`), so it declares `retryable` itself.
    """

    retryable: ClassVar[bool] = False


class DataServerUnavailableError(MLDataError):
    """Raised when the data server cannot be reached; retryable once it runs."""

    retryable = True


class DataServerRequestError(MLDataError):
    """Raised when the data server rejects a request (bad name or criteria, server failure)."""


class DatasetNotFoundError(DataServerRequestError):
    """Raised when the data server holds no dataset of the given name."""


class NoDataForTagsError(MLDataError):
    """Raised when the data server holds no dataset with any of the requested data tags."""


class SchemaMismatchError(MLDataError):
    """Raised when the datasets matching the data tags have schemas that cannot be joined."""


class DataFileError(MLDataError):
    """Raised when a file to push is missing, unreadable, or neither parquet nor CSV."""


class InvalidRequestError(MLDataError):
    """Raised when an address or data tag given to the client is malformed."""


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset stored on a data server.

    Parameters
    ----------
    name : str
        The dataset name, `"<data_tag>.<unique-id>.parquet"`.
    tag : str
        The data tag the dataset was pushed under.
    rows : int
        Number of rows.
    bytes : int
        Uncompressed size of the data in bytes.
    """

    name: str
    tag: str
    rows: int
    bytes: int


def _normalize_address(address: str) -> str:
    """Return `address` as a Flight URI, adding `grpc://` to a bare `host:port`."""
    address = address.strip()
    if not address:
        raise InvalidRequestError("the data server address is empty; expected e.g. host:11027")
    return address if "://" in address else f"grpc://{address}"


def _check_tag(tag: str) -> str:
    """Return `tag` if it can name datasets, else raise `InvalidRequestError`."""
    if not tag or any(bad in tag for bad in (".", "/", "\\", "\x00")):
        raise InvalidRequestError(
            f"invalid data tag {tag!r}: it must be non-empty and contain no '.', '/' or '\\'"
        )
    return tag


def _server_message(error: flight.FlightError) -> str:
    """Return the server's own message of a Flight error, without gRPC debug details."""
    return str(error).split(". Detail:", 1)[0].split(". gRPC client debug context:", 1)[0]


class MLDataClient:
    """Client of one ML data server.

    Parameters
    ----------
    address : str
        The server, as `grpc://host:port` or `host:port`.
    timeout : float | None
        Seconds a listing or drop call may take.
    transfer_timeout : float | None
        Seconds one dataset's push or fetch may take; None (the default) does not limit them.
    """

    def __init__(
        self, address: str, *, timeout: float | None = 30.0, transfer_timeout: float | None = None
    ) -> None:
        self._address = _normalize_address(address)
        self._options = flight.FlightCallOptions(timeout=timeout)
        self._transfer_options = flight.FlightCallOptions(timeout=transfer_timeout)
        try:
            self._client = flight.FlightClient(self._address)
        except (pa.ArrowException, ValueError) as e:
            raise InvalidRequestError(f"invalid data server address {address!r}: {e}") from e

    @property
    def address(self) -> str:
        """The server's address as a Flight URI."""
        return self._address

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def push_table(self, data_tag: str, table: pa.Table) -> str:
        """Store `table` on the server under `data_tag` and return the new dataset's name."""
        name = f"{_check_tag(data_tag)}.{uuid.uuid4().hex}.parquet"
        try:
            writer, _ = self._client.do_put(
                flight.FlightDescriptor.for_path(name), table.schema, self._transfer_options
            )
            writer.write_table(table)
            writer.close()
        except flight.FlightError as e:
            self._raise(e, f"could not push dataset {name}")
        logger.info("Pushed %s rows to %s as %s", table.num_rows, self._address, name)
        return name

    def push_file(self, data_tag: str, path: str | Path) -> str:
        """Store a parquet or CSV file under `data_tag` and return the new dataset's name."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".pq", ".csv"):
            raise DataFileError(f"cannot push {path}: only .parquet and .csv files are supported")
        if not path.is_file():
            raise DataFileError(f"cannot push {path}: no such file")
        try:
            table = pa_csv.read_csv(path) if suffix == ".csv" else pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise DataFileError(f"cannot read {path}: {e}") from e
        return self.push_table(data_tag, table)

    def list_datasets(self, data_tags: Sequence[str] | None = None) -> list[DatasetInfo]:
        """Return the datasets with any of `data_tags` (all datasets for None), by name."""
        infos = [
            DatasetInfo(
                name=name,
                tag=name.split(".", 1)[0],
                rows=info.total_records,
                bytes=info.total_bytes,
            )
            for name, info in self._flights(data_tags)
        ]
        return sorted(infos, key=lambda info: info.name)

    def fetch_table(self, data_tags: Sequence[str]) -> pa.Table:
        """Return all data of the datasets with any of `data_tags` as one table.

        Raises
        ------
        NoDataForTagsError
            If no dataset has any of the tags.
        SchemaMismatchError
            If the matching datasets' tables cannot be concatenated.
        """
        flights = sorted(self._flights(data_tags), key=lambda item: item[0])
        if not flights:
            raise NoDataForTagsError(
                f"no data for data tags {list(data_tags)} on the ML data server at "
                f"{self._address}; {self._no_data_hint(data_tags)}"
            )
        tables: list[pa.Table] = []
        for name, info in flights:
            try:
                ticket = info.endpoints[0].ticket
                tables.append(self._client.do_get(ticket, self._transfer_options).read_all())
            except flight.FlightError as e:
                self._raise(e, f"could not fetch dataset {name}")
        try:
            table: pa.Table = pa.concat_tables(tables)
        except pa.ArrowInvalid as e:
            names = ", ".join(name for name, _ in flights)
            raise SchemaMismatchError(
                f"datasets {names} on {self._address} have different schemas: {e}"
            ) from e
        logger.info("Fetched %s rows from %s datasets", table.num_rows, len(tables))
        return table

    def drop_dataset(self, name: str) -> None:
        """Delete the dataset `name` from the server."""
        action = flight.Action(DROP_DATASET_ACTION, name.encode("utf-8"))
        try:
            list(self._client.do_action(action, self._options))
        except flight.FlightError as e:
            self._raise(e, f"could not drop dataset {name}")
        logger.info("Dropped %s on %s", name, self._address)

    def _no_data_hint(self, data_tags: Sequence[str]) -> str:
        """What to do about missing data: name shared data the project could read instead.

        The manager stores a customer's tag `TAG` as `<customer>:TAG`; data pushed without a
        namespace (by hand, or by the original FLOps mock provider) is the shared `TAG`, which
        a project reads as `shared:TAG`.
        """
        plain = sorted({tag.split(":", 1)[1] for tag in data_tags if ":" in tag})
        found = sorted({name.split(".", 1)[0] for name, _ in self._flights(plain)}) if plain else []
        if found:
            names = ", ".join(f"'shared:{tag}'" for tag in found)
            return (
                f"the server holds shared data (pushed without a customer, e.g. by hand or by the "
                f"original FLOps mock provider) under {found}: name it {names} in the project's "
                f"data_tags to read it"
            )
        return f"push some with `flops-data-server push FILE --tag TAG --server {self._address}`"

    def _flights(self, data_tags: Sequence[str] | None) -> list[tuple[str, flight.FlightInfo]]:
        """List the matching flights as (dataset name, flight info) pairs."""
        if isinstance(data_tags, str):
            raise InvalidRequestError(f"data_tags must be a list of tags, not {data_tags!r}")
        criteria = {"data_tags": list(data_tags)} if data_tags is not None else None
        raw = json.dumps(criteria).encode("utf-8") if criteria is not None else b""
        try:
            flights = list(self._client.list_flights(raw, self._options))
        except flight.FlightError as e:
            self._raise(e, "could not list datasets")
        return [(flight_info.descriptor.path[0].decode(), flight_info) for flight_info in flights]

    def _raise(self, error: flight.FlightError, doing: str) -> NoReturn:
        """Translate a Flight error into an `MLDataError`, chained to it."""
        message = _server_message(error)
        if isinstance(error, flight.FlightUnavailableError | flight.FlightTimedOutError):
            raise DataServerUnavailableError(
                f"cannot reach the ML data server at {self._address} ({message}); {_START_HINT}"
            ) from error
        if getattr(error, "extra_info", b"") == b"not_found":
            raise DatasetNotFoundError(f"{doing}: {message}") from error
        raise DataServerRequestError(f"{doing}: {message}") from error
