"""`Closing`: `with` closes the object, also when the block raises."""

from __future__ import annotations

import pytest

from flops_core.closing import Closing


class _Resource(Closing):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_returns_the_object_and_closes_it_once() -> None:
    # Prepare
    resource = _Resource()

    # Execute
    with resource as entered:
        inside = entered.closed

    # Assert
    assert entered is resource
    assert inside == 0
    assert resource.closed == 1


def test_with_closes_the_object_when_the_block_raises_and_lets_the_error_through() -> None:
    # Prepare
    resource = _Resource()

    # Execute
    with pytest.raises(RuntimeError, match="boom"), resource:
        raise RuntimeError("boom")

    # Assert
    assert resource.closed == 1
