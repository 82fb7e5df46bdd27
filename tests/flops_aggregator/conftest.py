"""Fixtures for aggregator tests that run real processes, shared with tests/e2e."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import digits_data_server, mlflow_server, procs

__all__ = ["data_server_4", "mlflow_server", "procs"]


@pytest.fixture(scope="module")
def data_server_4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real data server holding digits in four partitions, tags `digits-0..3`."""
    with digits_data_server(tmp_path_factory.mktemp("data-server-4"), partitions=4) as address:
        yield address
