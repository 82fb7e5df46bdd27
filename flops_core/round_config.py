"""What a strategy's round configuration asks of a repo's `ModelManager`, checked before training.

Flower's FedProx puts `proximal_mu` into every round's fit configuration and counts on the
client to add the proximal term to its loss. A repo receives that configuration only through
the optional `ModelManager.configure_round(config)`; without it FedProx would silently train
like FedAvg. The manager refuses such a project from a static reading of `model_manager.py`
(`strategy_problem`), and the learner refuses the round (`flops_learner.learner`) as a second
line of defence, both with `FEDPROX_NEEDS_CONFIGURE_ROUND`.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

from flops_core.model_manager_inspection import inspect_model_manager
from flops_utils.ml_repo_templates import CONFIGURE_ROUND_METHOD

__all__ = ["FEDPROX_NEEDS_CONFIGURE_ROUND", "PROXIMAL_MU", "defines_method", "strategy_problem"]

#: The fit-configuration key through which FedProx sends its proximal weight.
PROXIMAL_MU = "proximal_mu"

#: Why FedProx cannot train a repo whose `ModelManager` lacks `configure_round`.
FEDPROX_NEEDS_CONFIGURE_ROUND = (
    f"strategy FedProx needs ModelManager.{CONFIGURE_ROUND_METHOD}(config) to apply the proximal "
    f"term {PROXIMAL_MU}/2 * ||w - w_global||^2 in fit_model() (see examples/pytorch-digits); "
    "define it or choose another strategy"
)


def strategy_problem(repo_dir: Path, strategy: str) -> str | None:
    """Return why the repo at `repo_dir` cannot train with `strategy`, or None.

    Only a definite answer is a problem: when `model_manager.py` does not show whether
    `ModelManager` defines a method (the class is imported, or has a base from elsewhere),
    the learner's own check decides during training.

    Parameters
    ----------
    repo_dir : Path
        The repo checkout, already checked against the ML-repo contract.
    strategy : str
        The project's strategy name, e.g. `FedProx`.
    """
    if strategy == "FedProx" and defines_method(repo_dir, CONFIGURE_ROUND_METHOD) is False:
        return FEDPROX_NEEDS_CONFIGURE_ROUND
    return None


def defines_method(repo_dir: Path, name: str) -> bool | None:
    """Whether the repo's `ModelManager` defines method `name`; None when that cannot be told.

    `model_manager.py` is parsed, never imported; methods inherited from same-file classes
    count, and `ModelManagerTemplate` contributes none.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse((repo_dir / "model_manager.py").read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    found = inspect_model_manager(tree, (name,))
    if found.class_name is None or not found.methods_known:
        return None
    return name not in found.missing_methods
