"""Which dataset a mock-data request means: a bundled one, a file in the datasets directory,
or a Hugging Face hub dataset.

Files are read only from the manager's datasets directory (`Settings.datasets_dir`, default
`<data_dir>/datasets`), named by a path relative to it or by an absolute path inside it; the
path is resolved (symbolic links followed) before the check, so `..` and links cannot reach
outside. A name of the form of a hub id (`mnist`, `owner/name`) that is neither bundled nor
a file (no .parquet/.pq/.csv suffix, nothing of that name in the datasets directory) is a
hub dataset, if the manager may use the hub
(`hub_datasets.py`): the hub is asked while the request is answered, the data loaded by the
job. Every refusal is an `InvalidMockDataError` (a 422) that names the body field at fault; a
hub that cannot be reached is a `DatasetUnavailableError` (a 503) that names it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from flops_core.errors import PermanentError, TemporaryError
from flops_core.mock_data import (
    BUNDLED_DATASETS,
    DATASET_FILE_SUFFIXES,
    LABEL_COLUMN,
    DatasetFileError,
    load_bundled_dataset,
    load_dataset_file,
)
from flops_manager.core.config import Settings
from flops_manager.services.hub_datasets import (
    HubAccess,
    HubDatasetNotFoundError,
    HubUnavailableError,
    check_hub_dataset,
    is_hub_name,
    load_hub_dataset,
    repo_id_of,
)

__all__ = [
    "DatasetRequest",
    "DatasetUnavailableError",
    "InvalidMockDataError",
    "LoadedDataset",
    "RequestedDataset",
    "check_dataset",
    "datasets_dir_of",
    "resolve_requested_dataset",
]

_DATASET_FIELD = ("body", "mock_data_configuration", "dataset_name")


class InvalidMockDataError(PermanentError, ValueError):
    """Raised when a mock-data request names an unusable dataset; the message is safe to show.

    Parameters
    ----------
    loc : tuple[str, ...]
        Where in the request the problem is, e.g. `("body", "mock_data_configuration",
        "dataset_name")`.
    message : str
        What is wrong.
    """

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class DatasetUnavailableError(TemporaryError, RuntimeError):
    """Raised when the named dataset is on a hub that cannot be reached now; safe, retryable.

    Parameters
    ----------
    loc : tuple[str, ...]
        The body field that names the dataset.
    message : str
        What is wrong and what to use instead.
    """

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset ready to be split: the table and its label column (None: no labels)."""

    table: pa.Table
    label_column: str | None


def datasets_dir_of(settings: Settings) -> Path:
    """The directory dataset files must be in: `datasets_dir`, default `<data_dir>/datasets`."""
    return settings.datasets_dir or settings.data_dir / "datasets"


def _valid_choices(datasets_dir: Path, hub: HubAccess | None = None) -> str:
    local = (
        f"{', '.join(BUNDLED_DATASETS)} (bundled), or a {'/'.join(DATASET_FILE_SUFFIXES)} "
        f"file in the manager's datasets directory {datasets_dir} (FLOPS_DATASETS_DIR), named "
        "relative to it"
    )
    if hub is None:
        return f"valid datasets: {local}"
    if not hub.enabled:
        return f"valid datasets: {local} (Hugging Face hub datasets are off: FLOPS_HUB_DATASETS)"
    return f"valid datasets: {local}, or a Hugging Face hub dataset (mnist, cifar10, owner/name)"


def _is_file_name(name: str) -> bool:
    return "/" in name or "\\" in name or name.lower().endswith(DATASET_FILE_SUFFIXES)


def _is_hub_dataset(name: str, hub: HubAccess, datasets_dir: Path) -> bool:
    """A hub id that is no file name: no dataset-file suffix, nothing in `datasets_dir`."""
    if not (hub.enabled and is_hub_name(name)) or name.lower().endswith(DATASET_FILE_SUFFIXES):
        return False
    try:
        return not (datasets_dir / name).exists()
    except (OSError, ValueError):
        return True


def _resolve_file(name: str, datasets_dir: Path, hub: HubAccess | None) -> Path:
    root = datasets_dir.resolve()
    given = Path(name)
    path = (given if given.is_absolute() else root / given).resolve()
    if not path.is_relative_to(root):
        raise InvalidMockDataError(
            _DATASET_FIELD,
            f"dataset file {name!r} is outside the manager's datasets directory; "
            + _valid_choices(datasets_dir, hub),
        )
    return path


@dataclass(frozen=True)
class DatasetRequest:
    """What a request asks of its dataset: the name and how it will be split.

    Parameters
    ----------
    name : str
        `dataset_name`.
    label_column : str | None
        The label column the request names; None means `label` if the dataset has it.
    labels_required : bool
        Whether the partitioning needs labels (Dirichlet); then the column must exist.
    partitions : int
        `number_of_partitions`.
    min_size : int
        Rows each partition must get at least.
    """

    name: str
    label_column: str | None = None
    labels_required: bool = False
    partitions: int = 1
    min_size: int = 1


@dataclass(frozen=True)
class RequestedDataset:
    """A checked dataset request: `load(cancel)` gives the data, at once or from the hub.

    `hub_repo` is the hub repo the job downloads (None: the data was loaded while the
    request was answered).
    """

    name: str
    load: Callable[[threading.Event], LoadedDataset] = field(repr=False)
    hub_repo: str | None = None


def check_dataset(table: pa.Table, request: DatasetRequest) -> LoadedDataset:
    """Check that `table` can be split as `request` asks, and find its label column.

    Raises
    ------
    InvalidMockDataError
        No rows, fewer rows than the partitions need, or no label column where one is
        needed or named.
    """
    name = request.name
    if table.num_rows == 0:
        raise InvalidMockDataError(_DATASET_FIELD, f"dataset {name!r} has no rows")
    if request.partitions * request.min_size > table.num_rows:
        raise InvalidMockDataError(
            ("body", "mock_data_configuration", "number_of_partitions"),
            f"{request.partitions} partitions of at least {request.min_size} rows need more "
            f"rows than the {table.num_rows} of dataset {name!r}",
        )
    column = request.label_column or LABEL_COLUMN
    if column in table.column_names:
        return LoadedDataset(table, column)
    if request.label_column is not None or request.labels_required:
        raise InvalidMockDataError(
            _DATASET_FIELD,
            f"dataset {name!r} has no label column {column!r} (set "
            f"mock_data_configuration.label_column); its columns: "
            f"{', '.join(table.column_names)}",
        )
    return LoadedDataset(table, None)


def resolve_requested_dataset(
    request: DatasetRequest, *, datasets_dir: Path, hub: HubAccess
) -> RequestedDataset:
    """Find the dataset a request names: load a bundled one or a file, or check the hub.

    A bundled dataset or a file is loaded and checked here. For a hub dataset the hub is asked
    whether it has it (at most `hub.timeout_s`); the job loads and checks it.

    Parameters
    ----------
    request : DatasetRequest
        The name and the split asked for.
    datasets_dir : Path
        The only directory files are read from.
    hub : HubAccess
        Whether and how the hub may be used.

    Raises
    ------
    InvalidMockDataError
        Unknown name, no such dataset on the hub, a file outside `datasets_dir`, missing or
        unreadable, or a dataset that cannot be split as asked; the message lists the valid
        choices.
    DatasetUnavailableError
        The name is a hub dataset and the hub cannot be reached (or access is offline and the
        dataset is not cached).
    """
    name = request.name
    if name in BUNDLED_DATASETS:
        table = load_bundled_dataset(name)
    elif _is_hub_dataset(name, hub, datasets_dir):
        return _hub_dataset(request, hub=hub, datasets_dir=datasets_dir)
    elif _is_file_name(name):
        try:
            table = load_dataset_file(_resolve_file(name, datasets_dir, hub))
        except DatasetFileError as e:
            raise InvalidMockDataError(
                _DATASET_FIELD,
                f"dataset file {name!r}: {e}; " + _valid_choices(datasets_dir, hub),
            ) from e
    else:
        raise InvalidMockDataError(
            _DATASET_FIELD, f"unknown dataset {name!r}; " + _valid_choices(datasets_dir, hub)
        )
    loaded = check_dataset(table, request)
    return RequestedDataset(name, lambda cancel: loaded)


def _hub_dataset(
    request: DatasetRequest, *, hub: HubAccess, datasets_dir: Path
) -> RequestedDataset:
    name = request.name
    try:
        repo = check_hub_dataset(name, hub)
    except HubDatasetNotFoundError as e:
        raise InvalidMockDataError(
            _DATASET_FIELD, f"unknown dataset {name!r}: {e}; " + _valid_choices(datasets_dir, hub)
        ) from e
    except HubUnavailableError as e:
        advice = "Unset HF_HUB_OFFLINE" if hub.offline else "Try again later"
        raise DatasetUnavailableError(
            _DATASET_FIELD,
            f"mock_data_configuration.dataset_name {name!r} is a Hugging Face hub dataset "
            f"({repo_id_of(name)}) and the hub cannot be reached: {e}. {advice}, or use a "
            f"dataset that needs no hub: "
            + _valid_choices(datasets_dir, None).removeprefix("valid datasets: "),
        ) from e

    def load(cancel: threading.Event) -> LoadedDataset:
        return check_dataset(load_hub_dataset(repo, hub=hub, cancel=cancel), request)

    return RequestedDataset(name, load, hub_repo=repo)
