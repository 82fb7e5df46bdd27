"""Fixtures shared by all test folders: free ports, a real HTTP receiver for events, and
MLflow's process-wide URIs put back after every test.

`free_port`/`free_ports` (`tests.ports`) and `eventually` (`tests.wait`, the one way to wait
for a condition) are re-exported here."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.event_receiver import EventReceiver
from tests.ports import free_port, free_ports
from tests.repos import example_repo
from tests.wait import WaitFailed, eventually

__all__ = [
    "CLOSED_HUB_ENDPOINT",
    "EventReceiver",
    "WaitFailed",
    "eventually",
    "free_port",
    "free_ports",
]

#: A Hugging Face hub endpoint nobody answers at (the discard port on loopback).
CLOSED_HUB_ENDPOINT = "http://127.0.0.1:9"

# No test may reach the Hugging Face hub. The Hugging Face libraries read these when they are
# imported (in this process, and in every process a test starts: they inherit the
# environment), the manager's settings when it starts. Tests of the hub path set their own
# endpoint (a `tests.fakes.hf_hub.FakeHub`) explicitly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_ENDPOINT"] = CLOSED_HUB_ENDPOINT


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


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`examples/sklearn-digits` as a one-commit Git repo, by its file:// URL."""
    return example_repo(tmp_path_factory.mktemp("repos") / "sklearn-digits")
