"""`configure_logging`: the `flops.*` level, and libraries kept to warnings."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from flops_core.logs import configure_logging


@pytest.fixture
def restored_levels() -> Iterator[None]:
    """Undo what `configure_logging` changes, so that later tests see the loggers unchanged."""
    flops, library = logging.getLogger("flops"), logging.getLogger("flops_test_library")
    saved = (flops.level, flops.propagate, list(flops.handlers), library.level)
    yield
    flops.setLevel(saved[0])
    flops.propagate = saved[1]
    flops.handlers[:] = saved[2]
    library.setLevel(saved[3])


@pytest.mark.usefixtures("restored_levels")
def test_quiet_libraries_log_only_warnings_while_flops_logs_at_the_level_asked() -> None:
    # Execute
    configure_logging("debug", quiet=("flops_test_library",))

    # Assert
    assert logging.getLogger("flops.anything").isEnabledFor(logging.DEBUG)
    library = logging.getLogger("flops_test_library")
    assert not library.isEnabledFor(logging.INFO)
    assert library.isEnabledFor(logging.WARNING)
