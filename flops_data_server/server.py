"""The ML data server: an Arrow Flight service that keeps tagged datasets as parquet files."""

# Wire format (compatible with the original FLOps data server):
#
# - `do_put` takes a PATH descriptor whose first element is the dataset name,
#   `"<data_tag>.<unique-id>.parquet"`; a bare tag gets a generated unique id.
# - `list_flights` takes the criteria `{"data_tags": [...]}` as JSON bytes (empty: everything) and
#   yields one `FlightInfo` per matching dataset, whose only endpoint's ticket is the dataset name.
# - `do_get` streams a dataset by name; the action `drop_dataset` (body: the name) deletes it.
#
# Every dataset is one parquet file in the data directory, named after the dataset, so a
# restarted server serves everything that was stored before. Uploads are written to a hidden
# temporary file in the same directory and renamed into place, so a crash never leaves a
# partial dataset that would be served.
#
# What a node reports to the manager (rows per tag, reads per reader host) is kept by
# `inventory`; whoever reports it subscribes to changes (`subscribe`), which are announced
# after each stored or dropped dataset and each read.

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq

from flops_core.logs import get_logger
from flops_data_server.inventory import ReadCounter, TagRows, reader_host, tag_of
from flops_utils.ml_data_client import DEFAULT_DATA_SERVER_PORT, DROP_DATASET_ACTION

__all__ = ["MLDataServer"]

logger = get_logger("data_server")

_SUFFIX = ".parquet"
_TMP_SUFFIX = ".tmp"
_NOT_FOUND = b"not_found"
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_CRITERIA_HELP = 'criteria must be empty or JSON like {"data_tags": ["<tag>", ...]}'


def _check_name(name: str) -> str:
    """Return `name` if it is a safe dataset name, else raise `FlightServerError`."""
    if any(bad in name for bad in ("/", "\\", "..", "\x00")):
        raise flight.FlightServerError(
            f"invalid dataset name {name!r}: it must not contain '/', '\\', '..' or NUL"
        )
    if not tag_of(name):
        raise flight.FlightServerError(
            f"invalid dataset name {name!r}: expected '<data_tag>.<unique-id>.parquet' "
            "with a non-empty data tag"
        )
    return name


def _decode(raw: bytes, what: str) -> str:
    """Decode a name sent by a client as UTF-8, or raise `FlightServerError`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise flight.FlightServerError(f"{what} must be UTF-8 text") from e


def _name_for_upload(descriptor: flight.FlightDescriptor) -> str:
    """Return the dataset name an upload is stored under (a bare tag gets a unique id)."""
    if descriptor.descriptor_type != flight.DescriptorType.PATH or not descriptor.path:
        raise flight.FlightServerError(
            "do_put expects a PATH descriptor whose first element is the dataset name "
            "'<data_tag>.<unique-id>.parquet' (or a bare data tag)"
        )
    name = _check_name(_decode(descriptor.path[0], "the dataset name"))
    if "." not in name:
        name = f"{name}.{uuid.uuid4().hex}"
    return name if name.endswith(_SUFFIX) else name + _SUFFIX


def _parse_criteria(raw: bytes) -> set[str] | None:
    """Return the requested data tags, or None for "all datasets"."""
    if not raw.strip():
        return None
    try:
        criteria = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise flight.FlightServerError(f"{_CRITERIA_HELP}; got malformed JSON ({e})") from e
    tags = criteria.get("data_tags") if isinstance(criteria, dict) else None
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise flight.FlightServerError(f"{_CRITERIA_HELP}; got {raw[:200]!r}")
    return set(tags)


class MLDataServer(flight.FlightServerBase):  # type: ignore[misc]  # pyarrow ships no types
    """Arrow Flight server that stores tagged datasets on disk and serves them to learners.

    The server listens as soon as it is constructed; call `shutdown()` to stop it.

    Parameters
    ----------
    data_dir : Path
        Directory holding one parquet file per dataset; created if missing.
    host : str
        Address to bind, `0.0.0.0` for all IPv4 interfaces.
    port : int
        Port to bind; 0 picks a free port (see `port`).
    advertise_host : str | None
        Host put into the endpoints' locations. Defaults to `host`, or to the loopback
        address when `host` is a wildcard address.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "0.0.0.0",
        port: int = DEFAULT_DATA_SERVER_PORT,
        advertise_host: str | None = None,
    ) -> None:
        self._data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._remove_partial_uploads()
        super().__init__(location=flight.Location.for_grpc_tcp(host, port))
        advertised = advertise_host or _WILDCARD_HOSTS.get(host, host)
        self._location = flight.Location.for_grpc_tcp(advertised, self.port)
        self._tag_rows = TagRows(data_dir)
        self._reads = ReadCounter()
        self._listeners: list[Callable[[], None]] = []

    @property
    def location(self) -> str:
        """The advertised location clients receive in endpoints, e.g. `grpc+tcp://h:11027`."""
        return str(self._location.uri.decode())

    @property
    def data_dir(self) -> Path:
        """The directory the datasets are stored in."""
        return self._data_dir

    def dataset_names(self) -> list[str]:
        """Return the names of all stored datasets, sorted."""
        return sorted(
            p.name for p in self._data_dir.glob(f"*{_SUFFIX}") if not p.name.startswith(".")
        )

    def stored_tags(self) -> dict[str, int]:
        """Return stored data tag -> total rows of its datasets (from parquet metadata)."""
        return self._tag_rows(self.dataset_names())

    def reads(self) -> dict[str, int]:
        """Return reader host -> datasets served to it (`do_get` calls) since the start."""
        return self._reads.snapshot()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after each stored or dropped dataset and each read.

        It runs on the Flight call's thread, so it must return at once (e.g. wake a thread).
        """
        self._listeners.append(listener)

    # --- Flight methods -------------------------------------------------------------------

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        """Store the uploaded stream under the descriptor's dataset name, atomically."""
        name = _name_for_upload(descriptor)
        target = self._data_dir / name
        tmp = self._data_dir / f".{name}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        rows = 0
        try:
            with open(tmp, "wb") as f:
                with pq.ParquetWriter(f, reader.schema) as parquet_writer:
                    for chunk in reader:
                        parquet_writer.write_batch(chunk.data)
                        rows += chunk.data.num_rows
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except (OSError, pa.ArrowException) as e:
            tmp.unlink(missing_ok=True)
            logger.error("Could not store dataset %s: %s", name, e)
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise flight.FlightServerError(f"could not store dataset {name!r}: {reason}") from e
        logger.info("Stored dataset %s (tag %s, %s rows)", name, tag_of(name), rows)
        self._changed()

    def list_flights(
        self, context: flight.ServerCallContext, criteria: bytes
    ) -> Iterator[flight.FlightInfo]:
        """Yield a `FlightInfo` for every dataset whose tag is in the criteria's data tags."""
        tags = _parse_criteria(criteria)
        logger.debug("Listing datasets for tags %s", tags)
        for name in self.dataset_names():
            if tags is not None and tag_of(name) not in tags:
                continue
            try:
                yield self._flight_info(name)
            except flight.FlightServerError as e:  # dropped meanwhile, or not parquet
                logger.warning("Skipping dataset %s: %s", name, e)

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        """Return the `FlightInfo` of the dataset named by a PATH descriptor."""
        if descriptor.descriptor_type != flight.DescriptorType.PATH or not descriptor.path:
            raise flight.FlightServerError("expected a PATH descriptor naming a dataset")
        return self._flight_info(_check_name(_decode(descriptor.path[0], "the dataset name")))

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> Any:
        """Stream the record batches of the dataset named by the ticket."""
        name = _check_name(_decode(ticket.ticket, "the ticket"))
        parquet_file = self._open(name)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from parquet_file.iter_batches()
            finally:
                parquet_file.close()

        host = reader_host(context.peer())
        self._reads.add(host)
        logger.info("Served %s (%s rows) to %s", name, parquet_file.metadata.num_rows, host)
        self._changed()
        return flight.GeneratorStream(parquet_file.schema_arrow, batches())

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        """Return the actions this server supports."""
        return [(DROP_DATASET_ACTION, "Delete a stored dataset; body: its name (UTF-8).")]

    def do_action(
        self, context: flight.ServerCallContext, action: flight.Action
    ) -> Iterator[bytes]:
        """Run an action; only `drop_dataset` exists."""
        if action.type != DROP_DATASET_ACTION:
            raise flight.FlightServerError(
                f"unknown action {action.type!r}; available: {DROP_DATASET_ACTION}"
            )
        name = _check_name(_decode(action.body.to_pybytes(), "the dataset name"))
        try:
            (self._data_dir / name).unlink()
        except FileNotFoundError as e:
            raise self._not_found(name) from e
        logger.info("Dropped dataset %s", name)
        self._changed()
        yield name.encode()

    # --- helpers --------------------------------------------------------------------------

    def _flight_info(self, name: str) -> flight.FlightInfo:
        """Describe one stored dataset; its byte size is the uncompressed data size."""
        parquet_file = self._open(name)
        try:
            metadata = parquet_file.metadata
            size = sum(
                metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
            )
            return flight.FlightInfo(
                parquet_file.schema_arrow,
                flight.FlightDescriptor.for_path(name),
                [flight.FlightEndpoint(name.encode(), [self._location])],
                metadata.num_rows,
                size,
            )
        finally:
            parquet_file.close()

    def _open(self, name: str) -> pq.ParquetFile:
        """Open a stored dataset, translating a missing or broken file into a Flight error."""
        path = self._data_dir / name
        if not name.endswith(_SUFFIX) or not path.is_file():
            raise self._not_found(name)
        try:
            return pq.ParquetFile(path)
        except FileNotFoundError as e:
            raise self._not_found(name) from e
        except (OSError, pa.ArrowException) as e:
            logger.error("Dataset %s is unreadable: %s", name, e)
            raise flight.FlightServerError(f"dataset {name!r} is unreadable") from e

    def _changed(self) -> None:
        """Tell the subscribers that the datasets or the reads changed."""
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not fail the Flight call
                logger.exception("A change listener of the data server failed")

    def _not_found(self, name: str) -> flight.FlightServerError:
        """Return the error sent for an unknown dataset name."""
        return flight.FlightServerError(f"dataset {name!r} not found", _NOT_FOUND)

    def _remove_partial_uploads(self) -> None:
        """Delete temporary files left behind by uploads that were cut off by a crash."""
        for tmp in self._data_dir.glob(f".*{_TMP_SUFFIX}"):
            logger.warning("Removing partial upload %s", tmp.name)
            tmp.unlink(missing_ok=True)
