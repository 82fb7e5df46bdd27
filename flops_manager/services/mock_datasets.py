"""Which dataset a mock-data request means: a bundled one, or a file in the datasets directory.

Files are read only from the manager's datasets directory (`Settings.datasets_dir`, default
`<data_dir>/datasets`), named by a path relative to it or by an absolute path inside it; the
path is resolved (symbolic links followed) before the check, so `..` and links cannot reach
outside. Every refusal is an `InvalidMockDataError` that names the body field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flops_manager.core.config import Settings
from flops_utils.mock_data import (
    BUNDLED_DATASETS,
    DATASET_FILE_SUFFIXES,
    LABEL_COLUMN,
    DatasetFileError,
    load_bundled_dataset,
    load_dataset_file,
)

__all__ = ["InvalidMockDataError", "LoadedDataset", "datasets_dir_of", "load_requested_dataset"]

_DATASET_FIELD = ("body", "mock_data_configuration", "dataset_name")


class InvalidMockDataError(ValueError):
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


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset ready to be split: the table and its label column (None: no labels)."""

    table: pa.Table
    label_column: str | None


def datasets_dir_of(settings: Settings) -> Path:
    """The directory dataset files must be in: `datasets_dir`, default `<data_dir>/datasets`."""
    return settings.datasets_dir or settings.data_dir / "datasets"


def _valid_choices(datasets_dir: Path) -> str:
    return (
        f"valid datasets: {', '.join(BUNDLED_DATASETS)}, or a "
        f"{'/'.join(DATASET_FILE_SUFFIXES)} file in the manager's datasets directory "
        f"{datasets_dir} (FLOPS_DATASETS_DIR), named relative to it"
    )


def _is_file_name(name: str) -> bool:
    return "/" in name or "\\" in name or name.lower().endswith(DATASET_FILE_SUFFIXES)


def _resolve_file(name: str, datasets_dir: Path) -> Path:
    root = datasets_dir.resolve()
    given = Path(name)
    path = (given if given.is_absolute() else root / given).resolve()
    if not path.is_relative_to(root):
        raise InvalidMockDataError(
            _DATASET_FIELD,
            f"dataset file {name!r} is outside the manager's datasets directory; "
            + _valid_choices(datasets_dir),
        )
    return path


def load_requested_dataset(
    *, name: str, label_column: str | None, labels_required: bool, datasets_dir: Path
) -> LoadedDataset:
    """Load the dataset a request names and check its label column.

    Parameters
    ----------
    name : str
        `dataset_name`: a bundled dataset's name or a file in `datasets_dir`.
    label_column : str | None
        The label column the request names; None means `label` if the dataset has it.
    labels_required : bool
        Whether the partitioning needs labels (Dirichlet); then the column must exist.
    datasets_dir : Path
        The only directory files are read from.

    Raises
    ------
    InvalidMockDataError
        Unknown name, a file outside `datasets_dir`, missing or unreadable, or no label column
        where one is needed or named; the message lists the valid choices.
    """
    if name in BUNDLED_DATASETS:
        table = load_bundled_dataset(name)
    elif _is_file_name(name):
        try:
            table = load_dataset_file(_resolve_file(name, datasets_dir))
        except DatasetFileError as e:
            raise InvalidMockDataError(
                _DATASET_FIELD, f"dataset file {name!r}: {e}; " + _valid_choices(datasets_dir)
            ) from e
    else:
        raise InvalidMockDataError(
            _DATASET_FIELD, f"unknown dataset {name!r}; " + _valid_choices(datasets_dir)
        )
    if table.num_rows == 0:
        raise InvalidMockDataError(_DATASET_FIELD, f"dataset {name!r} has no rows")
    column = label_column or LABEL_COLUMN
    if column in table.column_names:
        return LoadedDataset(table, column)
    if label_column is not None or labels_required:
        raise InvalidMockDataError(
            _DATASET_FIELD,
            f"dataset {name!r} has no label column {column!r} (set "
            f"mock_data_configuration.label_column); its columns: "
            f"{', '.join(table.column_names)}",
        )
    return LoadedDataset(table, None)
