"""Fixtures shared by all test folders: free ports and a real HTTP receiver for events."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from flops_utils.event_receiver import EventReceiver

__all__ = ["EventReceiver", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def events() -> Iterator[EventReceiver]:
    receiver = EventReceiver()
    yield receiver
    receiver.close()
