"""The learner checks what the repo's ModelManager returns and says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from flops_learner.learner import Learner
from flops_utils.user_code import UserCodeError


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
