"""Flower strategies chosen by name, with their user-settable parameters checked up front."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from flwr.common import Metrics, Parameters, Scalar
from flwr.server import strategy as fl_strategy
from flwr.server.strategy import FedAvg, Strategy

from flops_core.errors import PermanentError
from flops_core.vocabulary import STRATEGY_NAMES

__all__ = [
    "STRATEGIES",
    "StrategyConfigError",
    "build_strategy",
    "strategy_parameters",
    "weighted_average",
]

#: Strategies users can name, all taken from Flower unchanged.
STRATEGIES: dict[str, type[FedAvg]] = {name: getattr(fl_strategy, name) for name in STRATEGY_NAMES}

# Constructor arguments FLOps itself supplies; users set these through the FL configuration.
_SET_BY_FLOPS = frozenset(
    {
        "min_fit_clients",
        "min_evaluate_clients",
        "min_available_clients",
        "evaluate_fn",
        "on_fit_config_fn",
        "on_evaluate_config_fn",
        "initial_parameters",
        "fit_metrics_aggregation_fn",
        "evaluate_metrics_aggregation_fn",
        "first_aggregation_rule",
        "inplace",
    }
)

# Defaults FLOps gives where Flower has none: Bulyan's first stage (Krum) needs no arguments.
_DEFAULTS: dict[tuple[str, str], Any] = {("Bulyan", "aggregation_rule_kwargs"): {}}

_FRACTIONS = frozenset({"fraction_fit", "fraction_evaluate"})


class StrategyConfigError(PermanentError, ValueError):
    """Raised when a strategy name or one of its parameters is not valid; says what is."""


def strategy_parameters(name: str) -> dict[str, Any]:
    """Return the parameters a user may set for strategy `name`, with Flower's defaults.

    A parameter without a default (for example FedProx's `proximal_mu`) maps to
    `inspect.Parameter.empty`.
    """
    cls = _strategy_class(name)
    return {
        p.name: _DEFAULTS.get((name, p.name), p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.name not in _SET_BY_FLOPS and p.kind is p.KEYWORD_ONLY
    }


def build_strategy(
    name: str,
    params: dict[str, Any],
    *,
    initial_parameters: Parameters,
    min_available_clients: int,
    min_fit_clients: int,
    min_evaluate_clients: int,
    round_config: Callable[[int], dict[str, Scalar]] | None = None,
) -> Strategy:
    """Instantiate Flower's strategy `name` with the user's `params` and FLOps' settings.

    Parameters
    ----------
    round_config : Callable[[int], dict[str, Scalar]] | None
        Config sent to clients with every fit and evaluate instruction, by round (Flower's
        `on_fit_config_fn` and `on_evaluate_config_fn`); `None` sends none.

    Raises
    ------
    StrategyConfigError
        Unknown name, unknown parameter (valid ones listed), missing required parameter,
        wrong type, or a value Flower itself rejects.
    """
    allowed = strategy_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise StrategyConfigError(
            f"strategy {name} has no parameter {', '.join(unknown)}; "
            f"valid parameters: {_describe(allowed)}"
        )
    missing = sorted(
        k for k, v in allowed.items() if v is inspect.Parameter.empty and k not in params
    )
    if missing:
        raise StrategyConfigError(
            f"strategy {name} needs parameter {', '.join(missing)}; "
            f"valid parameters: {_describe(allowed)}"
        )
    for key, value in params.items():
        _check_value(name, key, value, allowed[key])
    defaults = {k: v for (s, k), v in _DEFAULTS.items() if s == name and k not in params}
    if round_config is not None:
        defaults.update(on_fit_config_fn=round_config, on_evaluate_config_fn=round_config)
    try:
        return STRATEGIES[name](
            **defaults,
            **params,
            initial_parameters=initial_parameters,
            min_available_clients=min_available_clients,
            min_fit_clients=min_fit_clients,
            min_evaluate_clients=min_evaluate_clients,
            fit_metrics_aggregation_fn=weighted_average,
            evaluate_metrics_aggregation_fn=weighted_average,
        )
    except (TypeError, ValueError) as e:
        raise StrategyConfigError(f"strategy {name} rejected its parameters: {e}") from e


def weighted_average(results: list[tuple[int, Metrics]]) -> Metrics:
    """Average every numeric metric over learners, weighted by their example counts."""
    total = sum(n for n, _ in results)
    if total == 0:
        return {}
    keys = {k for _, m in results for k, v in m.items() if isinstance(v, int | float)}
    return {
        k: sum(n * float(m[k]) for n, m in results if isinstance(m.get(k), int | float)) / total
        for k in sorted(keys)
    }


def _strategy_class(name: str) -> type[FedAvg]:
    if name not in STRATEGIES:
        raise StrategyConfigError(
            f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[name]


def _check_value(strategy: str, key: str, value: Any, default: Any) -> None:
    expected: tuple[type, ...]
    if isinstance(default, bool):
        expected = (bool,)
    elif isinstance(default, int | float):
        expected = (int, float)
    else:
        return
    if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
        kind = "true or false" if expected == (bool,) else "a number"
        raise StrategyConfigError(
            f"strategy {strategy} parameter {key} must be {kind}, got {value!r}"
        )
    if key in _FRACTIONS and not 0.0 <= float(value) <= 1.0:
        raise StrategyConfigError(
            f"strategy {strategy} parameter {key} must be between 0 and 1, got {value!r}"
        )


def _describe(allowed: dict[str, Any]) -> str:
    return (
        ", ".join(
            f"{k} (required)" if v is inspect.Parameter.empty else f"{k}={v!r}"
            for k, v in allowed.items()
        )
        or "none"
    )
