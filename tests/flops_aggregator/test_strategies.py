"""Strategies are Flower's, chosen by name; bad names and parameters fail with the choices."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.common import ndarrays_to_parameters
from flwr.server import strategy as fl

from flops_aggregator.strategies import (
    STRATEGIES,
    StrategyConfigError,
    build_strategy,
    strategy_parameters,
    weighted_average,
)

INITIAL = ndarrays_to_parameters([np.zeros((2, 2)), np.zeros(2)])
REQUIRED_NAMES = [
    "FedAvg", "FedProx", "FedAdam", "FedYogi", "FedAdagrad",
    "FedAvgM", "FedMedian", "FedTrimmedAvg", "Krum",
]  # fmt: skip


def _build(name: str, params: dict[str, object]) -> object:
    return build_strategy(
        name,
        params,
        initial_parameters=INITIAL,
        min_available_clients=3,
        min_fit_clients=2,
        min_evaluate_clients=2,
    )


@pytest.mark.parametrize("name", REQUIRED_NAMES)
def test_every_named_strategy_is_flowers_own(name: str) -> None:
    # Execute
    params = {"proximal_mu": 0.1} if name == "FedProx" else {}
    strategy = _build(name, params)

    # Assert
    assert type(strategy) is getattr(fl, name)
    assert strategy.min_fit_clients == 2  # type: ignore[attr-defined]
    assert strategy.min_available_clients == 3  # type: ignore[attr-defined]
    assert strategy.initialize_parameters(client_manager=None) is not None  # type: ignore[attr-defined,arg-type]


def test_user_parameters_reach_the_strategy() -> None:
    # Execute
    strategy = _build("FedAdam", {"eta": 0.5, "beta_1": 0.8, "fraction_fit": 0.5})

    # Assert
    assert strategy.eta == 0.5  # type: ignore[attr-defined]
    assert strategy.beta_1 == 0.8  # type: ignore[attr-defined]
    assert strategy.fraction_fit == 0.5  # type: ignore[attr-defined]


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(StrategyConfigError) as error:
        _build("FedAverage", {})
    assert "unknown strategy 'FedAverage'" in str(error.value)
    for name in STRATEGIES:
        assert name in str(error.value)


def test_unknown_parameter_lists_valid_parameters() -> None:
    with pytest.raises(StrategyConfigError) as error:
        _build("FedTrimmedAvg", {"trim": 0.1})
    assert "has no parameter trim" in str(error.value)
    assert "beta=0.2" in str(error.value)


def test_missing_required_parameter_is_named() -> None:
    with pytest.raises(StrategyConfigError, match="FedProx needs parameter proximal_mu"):
        _build("FedProx", {})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fraction_fit": 1.5}, "fraction_fit must be between 0 and 1"),
        ({"accept_failures": "yes"}, "accept_failures must be true or false"),
        ({"server_momentum": "high"}, "server_momentum must be a number"),
    ],
)
def test_bad_parameter_values_are_rejected(params: dict[str, object], message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message):
        _build("FedAvgM", params)


def test_settings_flops_controls_are_not_user_parameters() -> None:
    assert "min_fit_clients" not in strategy_parameters("FedAvg")
    assert "initial_parameters" not in strategy_parameters("FedAdam")
    assert strategy_parameters("FedTrimmedAvg")["beta"] == 0.2


def test_weighted_average_weights_by_examples() -> None:
    result = weighted_average([(10, {"accuracy": 1.0, "tag": "x"}), (30, {"accuracy": 0.5})])
    assert result == {"accuracy": pytest.approx(0.625)}
    assert weighted_average([]) == {}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_round_config_goes_with_every_fit_and_evaluate(name: str) -> None:
    # Execute
    strategy = build_strategy(
        name,
        {"proximal_mu": 0.1} if name == "FedProx" else {},
        initial_parameters=INITIAL,
        min_available_clients=1,
        min_fit_clients=1,
        min_evaluate_clients=1,
        round_config=lambda server_round: {"flops_cycle": server_round},
    )

    # Assert
    assert isinstance(strategy, fl.FedAvg)
    assert strategy.on_fit_config_fn is not None and strategy.on_evaluate_config_fn is not None
    assert strategy.on_fit_config_fn(2) == strategy.on_evaluate_config_fn(2) == {"flops_cycle": 2}
