"""Demo data for learner nodes: bundled datasets as Arrow tables, split into partitions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

__all__ = ["BUNDLED_DATASETS", "UnknownDatasetError", "load_bundled_dataset", "partition_iid"]


class UnknownDatasetError(ValueError):
    """Raised when a dataset name is not one FLOps can load; lists the valid names."""


def _sklearn_loader(function: str, feature_column: str) -> Callable[[], pa.Table]:
    def load() -> pa.Table:
        from sklearn import datasets

        bunch = getattr(datasets, function)()
        features = np.asarray(bunch.data, dtype=np.float64)
        return pa.table(
            {
                feature_column: pa.array(list(features), type=pa.list_(pa.float64())),
                "label": pa.array(np.asarray(bunch.target, dtype=np.int64)),
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


def partition_iid(table: pa.Table, partitions: int, *, seed: int = 0) -> list[pa.Table]:
    """Shuffle `table` and cut it into `partitions` parts of (nearly) equal size.

    Every row lands in exactly one part.
    """
    if not 1 <= partitions <= table.num_rows:
        raise ValueError(f"partitions must be between 1 and {table.num_rows}, got {partitions}")
    order = np.random.default_rng(seed).permutation(table.num_rows)
    return [table.take(pa.array(part)) for part in np.array_split(order, partitions)]
