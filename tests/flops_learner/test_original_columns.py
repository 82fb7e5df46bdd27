"""The learner gives a repo the original FLOps' column semantics before the repo's code runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_core.events import EventReporter
from flops_learner.app import LearnerError, run_learner
from flops_learner.config import LearnerConfig
from tests.conftest import free_port

# A repo that builds a dataset of its own before (or without) `load_dataset()`, as repos of
# the original FLOps could: in its learner every dataset had the datasets 2.x columns.
_MODEL_MANAGER = """\
import datasets
import numpy as np
from flops_utils.ml_repo_templates import ModelManagerTemplate


class ModelManager(ModelManagerTemplate):
    def set_model_data(self):
        own = datasets.Dataset.from_dict({"x": [[1, 2], [3, 4], [5, 6]]}).with_format("numpy")
        self.x = own["x"].reshape((len(own), -1))

    def get_model(self):
        return None

    def get_model_parameters(self):
        return [np.zeros(2)]

    def set_model_parameters(self, parameters):
        pass

    def fit_model(self):
        return len(self.x)

    def evaluate_model(self):
        return 0.0, 1.0, len(self.x)
"""


def test_a_repos_own_dataset_has_array_columns_in_the_learner(tmp_path: Path) -> None:
    # Prepare: a repo, and an aggregator address nothing listens on
    (tmp_path / "model_manager.py").write_text(_MODEL_MANAGER)
    (tmp_path / "requirements.txt").write_text("numpy\n")
    config = LearnerConfig(
        project_id="p1", repo_dir=tmp_path, aggregator=f"127.0.0.1:{free_port()}",
        data_tags=["mnist"], connect_timeout=0.5,
    )  # fmt: skip
    reporter = EventReporter(project_id="p1", source="learner:learner", callback_url=None)

    # Execute
    with pytest.raises(LearnerError) as error:
        run_learner(config, reporter=reporter)
    reporter.close()

    # Assert: set_model_data() ran through; only the missing aggregator stopped the learner
    assert str(error.value).startswith("could not reach the aggregator"), str(error.value)
