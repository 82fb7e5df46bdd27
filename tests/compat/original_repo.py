"""ML repos written in the style of the original FLOps' published examples (our own code).

Such a repo pins its frameworks in a `conda.yaml` (`python=3.10.14`, `mlflow=2.12.1`, ...),
implements `ModelManagerTemplate` and `DataManagerTemplate` from `flops_utils.ml_repo_templates`,
and reads the node's data with `load_dataset()`, then `dataset.set_format("numpy")` and
`dataset["image"].reshape((len(dataset), -1))`, which assumes the `datasets` 2.x column
semantics the original learner image had.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["ORIGINAL_SKLEARN_FILES", "commit_repo", "write_original_sklearn_repo"]

_CONDA_YAML = """\
name: flops-digits-sklearn
channels:
  - conda-forge
dependencies:
  - python=3.10.14
  - pip<=24.0
  - mlflow=2.12.1
  - numpy=1.26.4
  - scikit-learn=1.4.2
"""

_DATA_MANAGER = """\
from flops_utils.ml_repo_building_blocks import load_dataset
from flops_utils.ml_repo_templates import DataManagerTemplate
from sklearn.model_selection import train_test_split


class DataManager(DataManagerTemplate):
    def __init__(self):
        self.train, self.test = self._prepare_data()

    def _prepare_data(self):
        dataset = load_dataset()
        dataset.set_format("numpy")
        # image: 8x8 grayscale PNGs, label: ClassLabel 0-9
        x = dataset["image"].reshape((len(dataset), -1)) / 255.0
        y = dataset["label"]
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.25, random_state=7
        )
        return (x_train, y_train), (x_test, y_test)

    def get_data(self):
        return self.train, self.test
"""

_MODEL_MANAGER = """\
import warnings

import numpy as np
from flops_utils.ml_repo_templates import ModelManagerTemplate
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

CLASSES = np.arange(10)
PIXELS = 8 * 8


def _fresh_model():
    model = LogisticRegression(penalty="l2", max_iter=5, warm_start=True)
    # The aggregator asks for parameters before any learner has fitted.
    model.classes_ = CLASSES
    model.coef_ = np.zeros((len(CLASSES), PIXELS))
    model.intercept_ = np.zeros(len(CLASSES))
    return model


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        self.model = _fresh_model()
        self.train = self.test = None

    def set_model_data(self):
        from data_manager import DataManager

        self.train, self.test = DataManager().get_data()

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return [self.model.coef_, self.model.intercept_]

    def set_model_parameters(self, parameters):
        self.model.coef_, self.model.intercept_ = parameters

    def fit_model(self):
        x, y = self.train
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(x, y)
        return len(x)

    def evaluate_model(self):
        x, y = self.test
        loss = log_loss(y, self.model.predict_proba(x), labels=CLASSES)
        return loss, self.model.score(x, y), len(x)
"""

#: The files of the original-style scikit-learn repo, by name.
ORIGINAL_SKLEARN_FILES = {
    "conda.yaml": _CONDA_YAML,
    "data_manager.py": _DATA_MANAGER,
    "model_manager.py": _MODEL_MANAGER,
}


def write_original_sklearn_repo(folder: Path) -> Path:
    """Write the original-style scikit-learn repo (digits as `image`/`label`) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ORIGINAL_SKLEARN_FILES.items():
        (folder / name).write_text(text)
    return folder


def commit_repo(folder: Path) -> str:
    """Make `folder` a Git repo with one commit of everything in it; return its file:// URL."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "original-style repo"]):
        subprocess.run([*git, *args], cwd=folder, check=True)
    return f"file://{folder}"
