"""Demo data for learner nodes: datasets as Arrow tables, split into IID or non-IID partitions.

Pure functions: loading a bundled scikit-learn dataset or a parquet/CSV file, splitting a
table into partitions (`partition_iid`, `partition_dirichlet`), and describing partitions
(`label_histogram`, `mean_pairwise_total_variation`). Where the data goes is the caller's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from flops_core.errors import PermanentError

__all__ = [
    "BUNDLED_DATASETS",
    "DATASET_FILE_SUFFIXES",
    "LABEL_COLUMN",
    "DatasetFileError",
    "UnknownDatasetError",
    "label_histogram",
    "load_bundled_dataset",
    "load_dataset_file",
    "mean_pairwise_total_variation",
    "partition_dirichlet",
    "partition_iid",
]

#: The label column of the bundled datasets (what `examples/sklearn-digits` reads).
LABEL_COLUMN = "label"
#: File suffixes `load_dataset_file` reads.
DATASET_FILE_SUFFIXES = (".parquet", ".pq", ".csv")
#: How often `partition_dirichlet` draws again before it fixes small partitions by hand.
_DIRICHLET_TRIES = 100


class UnknownDatasetError(PermanentError, ValueError):
    """Raised when a dataset name is not one FLOps can load; lists the valid names."""


class DatasetFileError(PermanentError, ValueError):
    """Raised when a dataset file is missing, unreadable, or neither parquet nor CSV."""


def _sklearn_loader(function: str, feature_column: str) -> Callable[[], pa.Table]:
    def load() -> pa.Table:
        from sklearn import datasets

        bunch = getattr(datasets, function)()
        features = np.asarray(bunch.data, dtype=np.float64)
        return pa.table(
            {
                feature_column: pa.array(list(features), type=pa.list_(pa.float64())),
                LABEL_COLUMN: pa.array(np.asarray(bunch.target, dtype=np.int64)),
            }
        )

    return load


#: Datasets that ship inside scikit-learn, so that demos need no download.
BUNDLED_DATASETS: dict[str, Callable[[], pa.Table]] = {
    "digits": _sklearn_loader("load_digits", "image"),
    "iris": _sklearn_loader("load_iris", "features"),
    "wine": _sklearn_loader("load_wine", "features"),
    "breast_cancer": _sklearn_loader("load_breast_cancer", "features"),
}


def load_bundled_dataset(name: str) -> pa.Table:
    """Return bundled dataset `name` as a table with a feature column and `label`."""
    if name not in BUNDLED_DATASETS:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; valid datasets: {', '.join(BUNDLED_DATASETS)}"
        )
    return BUNDLED_DATASETS[name]()


def load_dataset_file(path: Path) -> pa.Table:
    """Read a parquet (`.parquet`, `.pq`) or CSV (`.csv`) file as a table.

    Parameters
    ----------
    path : Path
        The file; its suffix decides the format.

    Raises
    ------
    DatasetFileError
        The suffix is not one of `DATASET_FILE_SUFFIXES`, the file is missing or unreadable.
    """
    suffix = path.suffix.lower()
    if suffix not in DATASET_FILE_SUFFIXES:
        raise DatasetFileError(
            f"{path.name}: only {', '.join(DATASET_FILE_SUFFIXES)} files can be datasets"
        )
    if not path.is_file():
        raise DatasetFileError(f"{path.name}: no such file")
    try:
        table: pa.Table = pa_csv.read_csv(path) if suffix == ".csv" else pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DatasetFileError(f"{path.name} cannot be read as {suffix[1:]}: {e}") from e
    return table


def _check_partitions(table: pa.Table, partitions: int, min_size: int = 1) -> None:
    if partitions < 1 or partitions * min_size > table.num_rows:
        raise ValueError(
            f"partitions must be between 1 and {table.num_rows // max(min_size, 1)} for "
            f"{table.num_rows} rows and at least {min_size} rows each, got {partitions}"
        )


def partition_iid(table: pa.Table, partitions: int, *, seed: int = 0) -> list[pa.Table]:
    """Shuffle `table` and cut it into `partitions` parts of (nearly) equal size.

    Every row lands in exactly one part.
    """
    _check_partitions(table, partitions)
    order = np.random.default_rng(seed).permutation(table.num_rows)
    return [table.take(pa.array(part)) for part in np.array_split(order, partitions)]


def _label_codes(table: pa.Table, label_column: str) -> np.ndarray:
    """Each row's label as a class index 0..K-1 (a null label is a class of its own)."""
    if label_column not in table.column_names:
        raise KeyError(
            f"no label column {label_column!r}; columns: {', '.join(table.column_names)}"
        )
    encoded = pc.dictionary_encode(table.column(label_column).combine_chunks())
    indices = pc.fill_null(encoded.indices, len(encoded.dictionary))
    return np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def partition_dirichlet(
    table: pa.Table,
    partitions: int,
    *,
    alpha: float,
    label_column: str = LABEL_COLUMN,
    seed: int = 0,
    min_size: int = 1,
) -> list[pa.Table]:
    """Split `table` into non-IID parts whose label proportions follow Dirichlet(`alpha`).

    For each class the rows of that class are shuffled and cut among the partitions in the
    proportions of one draw from Dirichlet(`alpha`, ..., `alpha`) (Hsu et al., 2019): a small
    alpha (0.1) gives each partition few classes, a large one (100) is close to IID. If a draw
    leaves a partition with fewer than `min_size` rows, everything is drawn again (up to 100
    times); should that still fail, rows are moved from the largest partitions to the small
    ones. Every row lands in exactly one partition, and the same seed gives the same split.

    Parameters
    ----------
    table : pa.Table
        The dataset.
    partitions : int
        How many parts, at least 1 and at most `table.num_rows // min_size`.
    alpha : float
        Concentration of the Dirichlet distribution, > 0.
    label_column : str
        The column that holds the labels (any type; nulls count as one class).
    seed : int
        Seed of the random generator.
    min_size : int
        Rows each partition gets at least (>= 1: no partition is empty).

    Raises
    ------
    ValueError
        `alpha` is not positive, `min_size` below 1, or too many partitions for the rows.
    KeyError
        `table` has no column `label_column`.
    """
    if not alpha > 0 or not np.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    _check_partitions(table, partitions, min_size)
    codes = _label_codes(table, label_column)
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(codes == k) for k in range(int(codes.max(initial=-1)) + 1)]
    parts: list[list[int]] = []
    for _ in range(_DIRICHLET_TRIES):
        parts = [[] for _ in range(partitions)]
        for rows in classes:
            if rows.size == 0:
                continue
            shuffled = rng.permutation(rows)
            shares = rng.dirichlet(np.full(partitions, alpha))
            cuts = (np.cumsum(shares)[:-1] * shuffled.size).astype(np.int64)
            for part, chunk in zip(parts, np.split(shuffled, cuts), strict=True):
                part.extend(chunk.tolist())
        if min(len(part) for part in parts) >= min_size:
            break
    else:
        _fill_small_partitions(parts, min_size)
    return [table.take(pa.array(rng.permutation(part), type=pa.int64())) for part in parts]


def _fill_small_partitions(parts: list[list[int]], min_size: int) -> None:
    """Move rows from the largest partitions into those with fewer than `min_size` rows."""
    for small in parts:
        while len(small) < min_size:
            largest = max(parts, key=len)
            small.append(largest.pop())


def label_histogram(table: pa.Table, label_column: str = LABEL_COLUMN) -> dict[str, int]:
    """Rows per label (labels as strings, sorted; a null label is `"null"`)."""
    counts = pc.value_counts(table.column(label_column).combine_chunks()).to_pylist()
    histogram = {
        "null" if item["values"] is None else str(item["values"]): int(item["counts"])
        for item in counts
    }
    return dict(sorted(histogram.items(), key=lambda item: _label_sort_key(item[0])))


def _label_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


def mean_pairwise_total_variation(histograms: Sequence[dict[str, int]]) -> float:
    """How different the partitions' label distributions are, from 0 (equal) to 1 (disjoint).

    The mean over all pairs of partitions of the total-variation distance
    `0.5 * sum_k |p_k - q_k|` between their label distributions; 0.0 for fewer than two.

    Parameters
    ----------
    histograms : Sequence[dict[str, int]]
        Rows per label of each partition (`label_histogram`).
    """
    labels = sorted({label for histogram in histograms for label in histogram})
    distributions = []
    for histogram in histograms:
        counts = np.array([histogram.get(label, 0) for label in labels], dtype=np.float64)
        distributions.append(counts / counts.sum() if counts.sum() else counts)
    pairs = list(combinations(distributions, 2))
    if not pairs:
        return 0.0
    return float(np.mean([0.5 * np.abs(p - q).sum() for p, q in pairs]))
