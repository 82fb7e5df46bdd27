"""Fixtures of the multi-node tests: the test bed, torn down whatever happens."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.multinode.testbed import TestBed


def bed_unavailable() -> str | None:
    """Why a test bed cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the multi-node test bed needs root (network namespaces, veths, a bridge)"
    if shutil.which("ip") is None:
        return "the multi-node test bed needs `ip` (iproute2)"
    return None


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBed]:
    """Three nodes (w1, w2 in cluster c1; w3 in c2) on a bridge; no data server started."""
    reason = bed_unavailable()
    if reason:
        pytest.skip(reason)
    testbed = TestBed(tmp_path_factory.mktemp("bed"))
    try:
        testbed.start()
        yield testbed
    finally:
        testbed.close()
