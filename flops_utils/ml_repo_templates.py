"""Base classes an ML repo implements: the FLOps ML-repo contract.

Repos written for the original FLOps import these names from `flops_utils.ml_repo_templates`;
that import path is part of the contract and must keep working unchanged.
"""

from abc import ABC, abstractmethod
from typing import Any

__all__ = [
    "CONFIGURE_ROUND_METHOD",
    "REQUIRED_MODEL_MANAGER_METHODS",
    "DataManagerTemplate",
    "ModelManagerTemplate",
]

#: Methods the learner and the aggregator call on a repo's `ModelManager`.
REQUIRED_MODEL_MANAGER_METHODS: tuple[str, ...] = (
    "set_model_data",
    "get_model",
    "get_model_parameters",
    "set_model_parameters",
    "fit_model",
    "evaluate_model",
)

#: The optional method through which learners pass each round's configuration (see below).
CONFIGURE_ROUND_METHOD = "configure_round"


class DataManagerTemplate(ABC):
    """Optional helper a repo's `data_manager.py` may implement.

    It calls `flops_utils.ml_repo_building_blocks.load_dataset()` to obtain the learner
    node's local data and prepares it for the model.
    """

    @abstractmethod
    def _prepare_data(self) -> Any:
        """Load the node's data with `load_dataset()` and preprocess it."""

    @abstractmethod
    def get_data(self) -> tuple[Any, Any]:
        """Return the prepared training and evaluation data."""


class ModelManagerTemplate(ABC):
    """The class a repo's `model_manager.py` implements as `ModelManager()`.

    The constructor takes no arguments and must not load data: the aggregator builds a
    `ModelManager` too (for initial parameters and for logging the trained model), and it has
    no access to any learner's data. Learners call `set_model_data()` once before training.

    Optional method (deliberately not defined here, so that FLOps can tell whether a repo's
    class defines it):

    `configure_round(self, config: dict) -> None`
        Called by the learner every round after `set_model_parameters()` with the global
        parameters and before `fit_model()`. `config` is the round's fit configuration from
        the aggregator's strategy, a dict of plain scalars (str, int, float, bool, bytes).
        With the strategy `FedProx` it holds `proximal_mu`, and `fit_model()` must add
        `proximal_mu / 2 * ||w - w_global||^2` to its loss, `w_global` being the parameters
        the round started from; FLOps refuses FedProx for a `ModelManager` without this
        method. `examples/pytorch-digits` shows both.
    """

    @abstractmethod
    def set_model_data(self) -> None:
        """Fetch the node's data (through `load_dataset()`) and make it available."""

    @abstractmethod
    def get_model(self) -> Any:
        """Return the managed model object (logged to MLflow with the repo's flavor)."""

    @abstractmethod
    def get_model_parameters(self) -> Any:
        """Return the model parameters as a list of NumPy arrays."""

    @abstractmethod
    def set_model_parameters(self, parameters: Any) -> None:
        """Replace the model parameters with `parameters` (a list of NumPy arrays)."""

    @abstractmethod
    def fit_model(self) -> int:
        """Train on the local data; return the number of training examples used."""

    @abstractmethod
    def evaluate_model(self) -> tuple[Any, Any, int]:
        """Evaluate on the local data; return `(loss, accuracy, number_of_examples)`."""
