"""The learner checks what the repo's ModelManager returns and says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.common import Scalar

from flops_core.user_code import UserCodeError
from flops_learner.learner import Learner


class _Manager:
    def __init__(self, fit_result: object = 10, evaluation: object = (0.5, 0.9, 5)) -> None:
        self.parameters = [np.zeros(3)]
        self.fit_result = fit_result
        self.evaluation = evaluation

    def get_model_parameters(self) -> list[np.ndarray]:
        return self.parameters

    def set_model_parameters(self, parameters: list[np.ndarray]) -> None:
        self.parameters = [p + 1 for p in parameters]

    def fit_model(self) -> object:
        return self.fit_result

    def evaluate_model(self) -> object:
        return self.evaluation


def test_fit_returns_trained_parameters_and_example_count() -> None:
    learner = Learner(_Manager())
    parameters, examples, _metrics = learner.fit([np.zeros(3)], {})
    assert examples == 10
    assert parameters[0].tolist() == [1.0, 1.0, 1.0]
    assert learner.rounds_trained == 1


def test_evaluate_reports_accuracy() -> None:
    assert Learner(_Manager()).evaluate([np.zeros(3)], {}) == (0.5, 5, {"accuracy": 0.9})


def test_fit_must_return_an_example_count() -> None:
    with pytest.raises(UserCodeError, match="must return the number of training examples"):
        Learner(_Manager(fit_result=None)).fit([np.zeros(3)], {})


def test_evaluate_must_return_three_values() -> None:
    with pytest.raises(UserCodeError, match=r"must return \(loss, accuracy, number_of_examples\)"):
        Learner(_Manager(evaluation=(0.5, 0.9))).evaluate([np.zeros(3)], {})


class _RoundConfiguredManager(_Manager):
    """A ModelManager that defines the optional configure_round and records the call order."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.configs: list[dict[str, object]] = []
        self.error = error

    def set_model_parameters(self, parameters: list[np.ndarray]) -> None:
        self.calls.append("set_model_parameters")
        super().set_model_parameters(parameters)

    def configure_round(self, config: dict[str, object]) -> None:
        self.calls.append("configure_round")
        if self.error is not None:
            raise self.error
        self.configs.append(config)

    def fit_model(self) -> object:
        self.calls.append("fit_model")
        return super().fit_model()


def test_fit_passes_the_round_config_to_configure_round_before_training() -> None:
    # Prepare
    manager = _RoundConfiguredManager()
    config: dict[str, Scalar] = {"proximal_mu": 0.1, "flops_cycle": 2}

    # Execute
    Learner(manager).fit([np.zeros(3)], config)

    # Assert
    assert manager.configs == [{"proximal_mu": 0.1, "flops_cycle": 2}]
    assert manager.calls == ["set_model_parameters", "configure_round", "fit_model"]


def test_fedprox_round_without_configure_round_is_refused_not_trained() -> None:
    # Prepare
    manager = _Manager()

    # Execute
    with pytest.raises(UserCodeError) as error:
        Learner(manager).fit([np.zeros(3)], {"proximal_mu": 0.1})

    # Assert: one sentence naming the missing method and the way out
    message = str(error.value)
    assert message.startswith("strategy FedProx needs ModelManager.configure_round(config)")
    assert "choose another strategy" in message and "\n" not in message


def test_an_exception_in_configure_round_names_the_method() -> None:
    learner = Learner(_RoundConfiguredManager(error=KeyError("proximal_mu")))
    with pytest.raises(UserCodeError, match=r"ModelManager.configure_round\(\) raised KeyError"):
        learner.fit([np.zeros(3)], {})
