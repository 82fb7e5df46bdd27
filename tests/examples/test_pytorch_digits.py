"""The pytorch-digits example applies FedProx's proximal term when the round asks for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flops_core.mock_data import load_bundled_dataset, partition_iid
from flops_core.user_code import load_model_manager
from flops_data_server import MLDataServer
from flops_utils.ml_data_client import MLDataClient
from flops_utils.ml_repo_building_blocks import clear_data_source, configure_data_source

PYTORCH = Path(__file__).resolve().parents[2] / "examples" / "pytorch-digits"
_REPO_MODULES = ("model_manager", "data_manager")


@pytest.fixture
def model_manager_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Any]]:
    """The example's ModelManager class, its load_dataset() served a third of digits."""
    server = MLDataServer(tmp_path / "data", host="127.0.0.1", port=0)
    address = f"127.0.0.1:{server.port}"
    with MLDataClient(address) as client:
        client.push_table("digits-0", partition_iid(load_bundled_dataset("digits"), 3, seed=1)[0])
    configure_data_source(address, ["digits-0"])
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_model_manager adds the repo
    for name in _REPO_MODULES:
        sys.modules.pop(name, None)
    try:
        yield type(load_model_manager(PYTORCH))
    finally:
        for name in _REPO_MODULES:
            sys.modules.pop(name, None)
        clear_data_source()
        server.shutdown()


def _distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Euclidean norm of the difference of two parameter lists, all arrays together."""
    return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a, b, strict=True))))


def _local_update(cls: type[Any], global_weights: list[np.ndarray], mu: float) -> float:
    """Train one round as a learner does; return the update's distance from `global_weights`."""
    manager = cls()
    manager.set_model_data()
    manager.set_model_parameters(global_weights)
    manager.configure_round({"proximal_mu": mu})
    manager.fit_model()
    return _distance(manager.get_model_parameters(), global_weights)


def test_a_large_proximal_mu_keeps_the_local_update_near_the_global_weights(
    model_manager_class: type[Any],
) -> None:
    # Prepare: the same global weights and the same data (same batch order) for both rounds
    global_weights = [w.copy() for w in model_manager_class().get_model_parameters()]

    # Execute
    plain = _local_update(model_manager_class, global_weights, mu=0.0)
    proximal = _local_update(model_manager_class, global_weights, mu=10.0)

    # Assert: measured as the L2 norm of (local - global) over all weights and biases
    # (measured: about 5.9 with mu=0 and 0.09 with mu=10)
    assert plain > 1.0, plain
    assert proximal < 0.1 * plain, (plain, proximal)
