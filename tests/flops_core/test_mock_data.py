"""Credentials never leave in URLs; demo partitions (IID and Dirichlet non-IID) cover every
sample exactly once, and a small Dirichlet alpha skews the partitions' label mixes measurably."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flops_core.mock_data import (
    DatasetFileError,
    UnknownDatasetError,
    label_histogram,
    load_bundled_dataset,
    load_dataset_file,
    mean_pairwise_total_variation,
    partition_dirichlet,
    partition_iid,
)
from flops_core.redact import redact_url


def test_credentials_are_removed_from_urls() -> None:
    assert redact_url("https://bob:s3cret@git.example.org:8443/r.git") == (
        "https://***@git.example.org:8443/r.git"
    )
    assert redact_url("https://git.example.org/r.git") == "https://git.example.org/r.git"


def test_iid_partitions_cover_every_sample_once() -> None:
    table = load_bundled_dataset("iris")
    parts = partition_iid(table, 4, seed=3)
    assert sum(p.num_rows for p in parts) == table.num_rows
    assert max(p.num_rows for p in parts) - min(p.num_rows for p in parts) <= 1
    rows = sorted(tuple(r) for p in parts for r in p.column("features").to_pylist())
    assert rows == sorted(tuple(r) for r in table.column("features").to_pylist())


def test_unknown_dataset_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownDatasetError, match="valid datasets: digits, iris, wine"):
        load_bundled_dataset("mnist")


def _with_row_ids(table: pa.Table) -> pa.Table:
    return table.append_column("row_id", pa.array(np.arange(table.num_rows)))


def _skew(parts: list[pa.Table]) -> float:
    """Mean pairwise total-variation distance between the partitions' label distributions."""
    return mean_pairwise_total_variation([label_histogram(p) for p in parts])


def test_small_alpha_skews_label_distributions_and_covers_every_sample_once() -> None:
    # The measure: mean over partition pairs of TV(p, q) = 0.5 * sum_k |p_k - q_k|, 0 for the
    # same label mix, 1 for disjoint labels. Dirichlet(0.1) on digits into 5 partitions gives
    # about 0.86; IID gives about 0.09 (the sampling noise of ~360 rows over 10 classes).
    table = _with_row_ids(load_bundled_dataset("digits"))

    for seed in range(5):
        parts = partition_dirichlet(table, 5, alpha=0.1, seed=seed)
        iid = partition_iid(table, 5, seed=seed)

        ids = np.concatenate([p.column("row_id").to_numpy() for p in parts])
        assert sorted(ids.tolist()) == list(range(table.num_rows))  # exactly once each
        assert min(p.num_rows for p in parts) >= 1
        assert _skew(parts) > 0.5
        assert _skew(iid) < 0.15


def test_large_alpha_is_close_to_iid() -> None:
    parts = partition_dirichlet(load_bundled_dataset("digits"), 5, alpha=1000.0, seed=0)

    assert _skew(parts) < 0.1


def test_dirichlet_is_deterministic_per_seed() -> None:
    table = _with_row_ids(load_bundled_dataset("wine"))

    def ids(seed: int) -> list[list[int]]:
        parts = partition_dirichlet(table, 4, alpha=0.3, seed=seed)
        return [p.column("row_id").to_pylist() for p in parts]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_no_partition_is_below_min_size_even_when_draws_keep_failing() -> None:
    # 100 partitions from alpha=0.01 leave most partitions empty on almost every draw, so the
    # split falls back to moving rows from the largest partitions.
    table = _with_row_ids(load_bundled_dataset("digits"))

    parts = partition_dirichlet(table, 100, alpha=0.01, seed=0, min_size=5)

    assert min(p.num_rows for p in parts) >= 5
    ids = sorted(i for p in parts for i in p.column("row_id").to_pylist())
    assert ids == list(range(table.num_rows))


def test_string_and_null_labels_are_classes() -> None:
    labels = ["a", "b", None, "c"] * 25
    table = pa.table({"x": np.arange(100), "y": labels})

    parts = partition_dirichlet(table, 3, alpha=0.5, label_column="y", seed=0)

    assert sum(p.num_rows for p in parts) == 100
    assert label_histogram(table, "y") == {"a": 25, "b": 25, "c": 25, "null": 25}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be a finite number > 0"),
        ({"alpha": float("nan")}, "alpha must be a finite number > 0"),
        ({"alpha": 1.0, "min_size": 0}, "min_size must be at least 1"),
        ({"alpha": 1.0, "min_size": 100}, "partitions must be between 1 and 1"),
    ],
)
def test_dirichlet_refuses_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    table = load_bundled_dataset("iris")

    with pytest.raises(ValueError, match=match):
        partition_dirichlet(table, 2, **kwargs)  # type: ignore[arg-type]


def test_dirichlet_needs_the_label_column() -> None:
    with pytest.raises(KeyError, match="no label column 'y'"):
        partition_dirichlet(load_bundled_dataset("iris"), 2, alpha=1.0, label_column="y")


def test_identical_partitions_measure_zero_and_disjoint_ones_one() -> None:
    assert mean_pairwise_total_variation([{"0": 5, "1": 5}, {"0": 1, "1": 1}]) == 0.0
    assert mean_pairwise_total_variation([{"0": 5}, {"1": 3}]) == 1.0
    assert mean_pairwise_total_variation([{"0": 5}]) == 0.0


def test_dataset_files_are_read_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,label\n1.5,0\n2.5,1\n")
    (tmp_path / "b.parquet").write_bytes(b"garbage")

    assert load_dataset_file(tmp_path / "a.csv").column("label").to_pylist() == [0, 1]
    with pytest.raises(DatasetFileError, match="cannot be read as parquet"):
        load_dataset_file(tmp_path / "b.parquet")
    with pytest.raises(DatasetFileError, match="no such file"):
        load_dataset_file(tmp_path / "c.csv")
    with pytest.raises(DatasetFileError, match=r"only \.parquet, \.pq, \.csv"):
        load_dataset_file(tmp_path / "d.json")
