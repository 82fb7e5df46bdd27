"""FedProx is refused up front for a repo whose ModelManager cannot receive proximal_mu."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_core.round_config import FEDPROX_NEEDS_CONFIGURE_ROUND, strategy_problem

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _repo(tmp_path: Path, source: str) -> Path:
    (tmp_path / "model_manager.py").write_text(source)
    return tmp_path


def test_fedprox_on_the_sklearn_example_names_configure_round() -> None:
    assert strategy_problem(EXAMPLES / "sklearn-digits", "FedProx") == (
        FEDPROX_NEEDS_CONFIGURE_ROUND
    )


def test_fedprox_on_the_pytorch_example_is_fine() -> None:
    assert strategy_problem(EXAMPLES / "pytorch-digits", "FedProx") is None


@pytest.mark.parametrize("strategy", ["FedAvg", "FedAdam", "Krum"])
def test_other_strategies_need_no_configure_round(strategy: str) -> None:
    assert strategy_problem(EXAMPLES / "sklearn-digits", strategy) is None


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        # configure_round inherited from a base class in the same file counts
        (
            "class Base:\n    def configure_round(self, config): ...\n"
            "class ModelManager(Base):\n    pass\n",
            False,
        ),
        # a template subclass without it is refused
        (
            "from flops_utils.ml_repo_templates import ModelManagerTemplate\n"
            "class Impl(ModelManagerTemplate):\n    def fit_model(self): return 1\n"
            "ModelManager = Impl\n",
            True,
        ),
        # the class comes from elsewhere: the checker cannot tell, the learner decides
        ("from mypackage.models import ModelManager\n", False),
        ("from mypackage.models import *\n", False),
        ("from torch import nn\nclass ModelManager(nn.Module):\n    pass\n", False),
    ],
    ids=["same-file-base", "template-alias", "imported", "star-import", "foreign-base"],
)
def test_only_a_definite_absence_is_a_problem(tmp_path: Path, source: str, problem: bool) -> None:
    # Execute
    found = strategy_problem(_repo(tmp_path, source), "FedProx")

    # Assert
    assert (found is not None) is problem
