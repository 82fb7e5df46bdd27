"""Credentials never leave in URLs; demo partitions cover every sample exactly once."""

from __future__ import annotations

import pytest

from flops_utils.mock_data import UnknownDatasetError, load_bundled_dataset, partition_iid
from flops_utils.redact import redact_url


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
