"""Building blocks ML repos call, e.g. `load_dataset()` for the learner node's local data."""

# Repos written for the original FLOps import `load_dataset` from this module; that import path
# is part of the ML-repo contract and must keep working unchanged.
#
# Where the data comes from (the node's ML data server and the project's data tags) is set by
# the FLOps learner before it imports the repo's code, through `configure_data_source()`. The
# setting is module-level state, so user code can keep calling `load_dataset()` with no
# arguments, as it did with the original FLOps.

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import datasets
from datasets.table import InMemoryTable

from flops_utils.ml_data_client import (
    DEFAULT_DATA_SERVER_PORT,
    InvalidRequestError,
    MLDataClient,
    MLDataError,
)
from flops_utils.ml_repo_building_blocks.dataset_columns import (
    disable_formatted_columns,
    enable_formatted_columns,
    formatted_columns_enabled,
)

__all__ = [
    "DEFAULT_FETCH_TIMEOUT_S",
    "DataSource",
    "DataSourceNotConfiguredError",
    "clear_data_source",
    "configure_data_source",
    "configured_data_source",
    "disable_formatted_columns",
    "enable_formatted_columns",
    "formatted_columns_enabled",
    "load_dataset",
]

# The SDK imports nothing else of FLOps; its records join the `flops.*` logger tree.
logger = logging.getLogger("flops.ml_repo_building_blocks")


class DataSourceNotConfiguredError(MLDataError):
    """Raised when `load_dataset()` is called before `configure_data_source()`."""


#: Seconds `load_dataset()` may take to fetch one dataset before it fails naming the server.
DEFAULT_FETCH_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class DataSource:
    """Where `load_dataset()` reads from.

    Parameters
    ----------
    address : str
        The ML data server, e.g. `grpc://127.0.0.1:11027`.
    data_tags : tuple[str, ...]
        The data tags whose datasets make up the node's data.
    fetch_timeout_s : float
        Seconds one dataset's download may take; a server that stops answering mid-way then
        fails `load_dataset()` naming it instead of hanging the learner.
    """

    address: str
    data_tags: tuple[str, ...]
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S


_data_source: DataSource | None = None


def configure_data_source(
    address: str, data_tags: Sequence[str], *, fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
) -> None:
    """Set the data server and data tags `load_dataset()` reads from.

    The FLOps learner calls this before it imports the repo's code. For a local experiment,
    call it yourself before `load_dataset()`.

    Parameters
    ----------
    address : str
        The ML data server, as `grpc://host:port` or `host:port`.
    data_tags : Sequence[str]
        The data tags to load; datasets with any of them are returned together.
    fetch_timeout_s : float
        Seconds one dataset's download may take (default 600).
    """
    global _data_source
    if isinstance(data_tags, str) or not data_tags:
        raise InvalidRequestError(
            f"data_tags must be a non-empty list of data tags, got {data_tags!r}"
        )
    _data_source = DataSource(
        address=address, data_tags=tuple(data_tags), fetch_timeout_s=fetch_timeout_s
    )
    logger.debug("Data source set to %s, data tags %s", address, list(data_tags))


def configured_data_source() -> DataSource | None:
    """Return the data source `load_dataset()` would use, or None if none is set."""
    return _data_source


def clear_data_source() -> None:
    """Forget the configured data source (for tests and for reuse of a process)."""
    global _data_source
    _data_source = None


def load_dataset() -> datasets.Dataset:
    """Return all data of the configured data tags as one dataset in Arrow format.

    It also makes `dataset["name"]` return the formatted column for every dataset of the
    process, as the `datasets` 2.x of the original FLOps did (see `enable_formatted_columns`):
    after `set_format("numpy")`, `dataset["image"]` is one NumPy array.

    Returns
    -------
    datasets.Dataset
        Every row of every dataset on the data server whose tag is one of the configured
        data tags, formatted as `"arrow"` (indexing returns `pyarrow.Table` objects).

    Raises
    ------
    DataSourceNotConfiguredError
        If no data source was configured.
    flops_utils.ml_data_client.MLDataError
        If the server is unavailable (`DataServerUnavailableError`) or holds no matching
        data (`NoDataForTagsError`).
    """
    source = _data_source
    if source is None:
        raise DataSourceNotConfiguredError(
            "load_dataset() has no data source: the FLOps learner sets it before it imports "
            "the repo's code. For a local experiment, call "
            "flops_utils.ml_repo_building_blocks.configure_data_source("
            f"'127.0.0.1:{DEFAULT_DATA_SERVER_PORT}', ['<data tag>']) first, with "
            "`flops-data-server serve` running and data pushed to it with "
            "`flops-data-server push FILE --tag <data tag>`."
        )
    enable_formatted_columns()
    with MLDataClient(source.address, transfer_timeout=source.fetch_timeout_s) as client:
        table = client.fetch_table(source.data_tags)
    # Wrapping the Arrow table directly keeps its schema, including the Hugging Face
    # features stored in its metadata; no temporary parquet file is needed.
    dataset = datasets.Dataset(InMemoryTable(table)).with_format("arrow")
    logger.info("Loaded %s rows for data tags %s", dataset.num_rows, list(source.data_tags))
    return dataset
