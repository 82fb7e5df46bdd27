"""ClientApp: the sklearn-digits `ModelManager` on this SuperNode's partition (`digits-<id>`).

`DigitsClient` and `load_model_manager` are also the client of the benchmark's bare Flower
run, so that both runtimes execute the same client code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from flwr.app import Context
from flwr.client import Client, ClientApp, NumPyClient
from flwr.common import NDArrays, Scalar

from flops_utils.ml_repo_building_blocks import configure_data_source

# A ClientApp process may serve several messages; load the data once per partition.
_MODEL_MANAGERS: dict[int, Any] = {}


class DigitsClient(NumPyClient):
    """Train and evaluate the repo's `ModelManager` on the local data."""

    def __init__(self, model_manager: Any) -> None:
        self.model_manager = model_manager

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        return list(self.model_manager.get_model_parameters())

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        self.model_manager.set_model_parameters(parameters)
        examples = self.model_manager.fit_model()
        return self.get_parameters(config), examples, {}

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        self.model_manager.set_model_parameters(parameters)
        loss, accuracy, examples = self.model_manager.evaluate_model()
        return float(loss), examples, {"accuracy": float(accuracy)}


def load_model_manager(repo_dir: str, data_server: str, partition: int) -> Any:
    """The repo's `ModelManager` with the data of partition `digits-<partition>` set."""
    configure_data_source(data_server, [f"digits-{partition}"])
    if repo_dir not in sys.path:
        sys.path.insert(0, repo_dir)
    model_manager = importlib.import_module("model_manager").ModelManager()
    model_manager.set_model_data()
    return model_manager


def client_fn(context: Context) -> Client:
    """Wrap this node's `ModelManager` in a Flower client."""
    partition = int(context.node_config["partition-id"])
    if partition not in _MODEL_MANAGERS:
        _MODEL_MANAGERS[partition] = load_model_manager(
            str(context.run_config["repo-dir"]), str(context.run_config["data-server"]), partition
        )
    return DigitsClient(_MODEL_MANAGERS[partition]).to_client()


app = ClientApp(client_fn=client_fn)
