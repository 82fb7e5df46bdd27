"""Configuration errors name the field and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flops_aggregator.config import AggregatorConfig


def test_min_fit_above_min_available_is_rejected() -> None:
    with pytest.raises(ValidationError, match="min_fit_clients \\(4\\) exceeds min_available"):
        AggregatorConfig(
            project_id="p", repo_dir=Path("."), min_available_clients=3, min_fit_clients=4
        )


@pytest.mark.parametrize("field", ["rounds", "min_fit_clients", "round_timeout"])
def test_counts_and_timeouts_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError) as error:
        AggregatorConfig(project_id="p", repo_dir=Path("."), **{field: 0})
    assert error.value.errors()[0]["loc"] == (field,)


def test_names_default_from_the_project() -> None:
    config = AggregatorConfig(project_id="p1", repo_dir=Path("."))
    assert config.experiment == "flops-p1"
    assert config.model_name == "flops-p1"
