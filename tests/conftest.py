"""Fixtures shared by all test folders: free ports, a real HTTP receiver for events, and
MLflow's process-wide URIs put back after every test."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.event_receiver import EventReceiver

__all__ = ["CLOSED_HUB_ENDPOINT", "EventReceiver", "eventually", "free_port", "free_ports"]

#: A Hugging Face hub endpoint nobody answers at (the discard port on loopback).
CLOSED_HUB_ENDPOINT = "http://127.0.0.1:9"

# No test may reach the Hugging Face hub. The Hugging Face libraries read these when they are
# imported (in this process, and in every process a test starts: they inherit the
# environment), the manager's settings when it starts. Tests of the hub path set their own
# endpoint (a `tests.fakes.hf_hub.FakeHub`) explicitly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_ENDPOINT"] = CLOSED_HUB_ENDPOINT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that nothing listens on now.

    For services that listen on `port + i` (the embedded default's data server of node `i`).
    """
    for _ in range(attempts):
        first = free_port()
        if first + count > 65536:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1 in {attempts} tries")


def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Return once `check()` holds; fail the test saying `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        time.sleep(0.3)


@pytest.fixture
def events() -> Iterator[EventReceiver]:
    receiver = EventReceiver()
    yield receiver
    receiver.close()


# MLflow keeps its tracking and registry URIs in module globals and copies them into the
# environment (for subprocesses). A test that sets them (directly, or through the aggregator's
# tracker in-process) would otherwise send every later test's in-process MLflow calls, and
# the processes it starts, to a server that is long gone.
_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_MLFLOW_URI_GLOBALS = (
    ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
    ("mlflow.tracking._model_registry.utils", "_registry_uri"),
)


def _mlflow_uri_globals() -> list[object]:
    return [
        getattr(sys.modules[module], name) if module in sys.modules else None
        for module, name in _MLFLOW_URI_GLOBALS
    ]


@pytest.fixture(autouse=True)
def _mlflow_uris_restored() -> Iterator[None]:
    """Put MLflow's tracking and registry URIs (globals and environment) back after a test."""
    env = {name: os.environ.get(name) for name in _MLFLOW_ENV}
    uris = _mlflow_uri_globals()
    yield
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for (module, name), value in zip(_MLFLOW_URI_GLOBALS, uris, strict=True):
        if module in sys.modules:
            setattr(sys.modules[module], name, value)


_COLUMNS_MODULE = "flops_utils.ml_repo_building_blocks.dataset_columns"


def _formatted_columns_enabled() -> bool:
    module = sys.modules.get(_COLUMNS_MODULE)
    return bool(module is not None and module.formatted_columns_enabled())


@pytest.fixture(autouse=True)
def _dataset_columns_restored() -> Iterator[None]:
    """Put `datasets.Dataset.__getitem__` back after a test that ran `load_dataset()` or a
    learner in-process: they give every dataset of the process the 2.x column semantics."""
    enabled = _formatted_columns_enabled()
    yield
    module = sys.modules.get(_COLUMNS_MODULE)
    if module is not None and module.formatted_columns_enabled() != enabled:
        if enabled:
            module.enable_formatted_columns()
        else:
            module.disable_formatted_columns()
