"""The Flower client that wraps a repo's `ModelManager`."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar

from flops_core.round_config import FEDPROX_NEEDS_CONFIGURE_ROUND, PROXIMAL_MU
from flops_core.user_code import UserCodeError, call_user_code
from flops_utils.ml_repo_templates import CONFIGURE_ROUND_METHOD

__all__ = ["Learner"]


class Learner(NumPyClient):
    """Train and evaluate the user's model on this node's data when the aggregator asks.

    Every call into the repo's code goes through `call_user_code`, so an exception there
    becomes a `UserCodeError` naming the method, the exception and the line in the repo.
    Each round's fit configuration reaches the repo through its optional
    `ModelManager.configure_round(config)`; a FedProx round (`proximal_mu` in the
    configuration) for a `ModelManager` without it is refused rather than trained as FedAvg.

    Parameters
    ----------
    model_manager : Any
        The repo's `ModelManager()`, with its data already set (`set_model_data()`).
    """

    def __init__(self, model_manager: Any) -> None:
        self.model_manager = model_manager
        self.rounds_trained = 0

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        """Return the current local parameters."""
        return _ndarrays(
            call_user_code(
                "ModelManager.get_model_parameters()", self.model_manager.get_model_parameters
            )
        )

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Load the global parameters, pass on the round's configuration, train locally."""
        self._set(parameters)
        self._configure_round(config)
        examples = call_user_code("ModelManager.fit_model()", self.model_manager.fit_model)
        if not isinstance(examples, int | np.integer) or examples < 0:
            raise UserCodeError(
                f"ModelManager.fit_model() must return the number of training examples "
                f"(an int >= 0), returned {examples!r}"
            )
        self.rounds_trained += 1
        return self.get_parameters(config), int(examples), {}

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Load the global parameters and evaluate them on the local data."""
        self._set(parameters)
        outcome = call_user_code("ModelManager.evaluate_model()", self.model_manager.evaluate_model)
        try:
            loss, accuracy, examples = outcome
            return float(loss), int(examples), {"accuracy": float(accuracy)}
        except (TypeError, ValueError) as e:
            raise UserCodeError(
                "ModelManager.evaluate_model() must return (loss, accuracy, "
                f"number_of_examples), returned {outcome!r}"
            ) from e

    def _configure_round(self, config: dict[str, Scalar]) -> None:
        configure = getattr(self.model_manager, CONFIGURE_ROUND_METHOD, None)
        if configure is None:
            if PROXIMAL_MU in config:
                raise UserCodeError(FEDPROX_NEEDS_CONFIGURE_ROUND)
            return
        call_user_code(f"ModelManager.{CONFIGURE_ROUND_METHOD}()", configure, dict(config))

    def _set(self, parameters: NDArrays) -> None:
        call_user_code(
            "ModelManager.set_model_parameters()",
            self.model_manager.set_model_parameters,
            parameters,
        )


def _ndarrays(values: Any) -> NDArrays:
    try:
        return [np.asarray(v) for v in values]
    except TypeError as e:
        raise UserCodeError(
            "ModelManager.get_model_parameters() must return a list of NumPy arrays, "
            f"returned {type(values).__name__}"
        ) from e
