"""Tests for `check_repo`: every ML-repo contract violation, found without running the repo."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from flops_core.repo_checker import ProblemCode, RepoContractError, RepoReport, check_repo
from flops_core.requirements.package_index import PackageIndex
from flops_utils.ml_repo_templates import REQUIRED_MODEL_MANAGER_METHODS

METHODS = "\n".join(
    f"    def {name}(self, *args):\n        return None\n"
    for name in REQUIRED_MODEL_MANAGER_METHODS
)
GOOD_MODEL_MANAGER = f"""
from flops_utils.ml_repo_templates import ModelManagerTemplate


class ModelManager(ModelManagerTemplate):
    def __init__(self, learning_rate=0.1):
        self.learning_rate = learning_rate

{METHODS}
"""


def make_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write a repo of `files` (relative path -> source) and return its folder."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    return repo


def good_repo(tmp_path: Path, **files: str) -> Path:
    """A repo that follows the contract, with `files` (name with `__` for `/`) replaced."""
    defaults = {"model_manager.py": GOOD_MODEL_MANAGER, "requirements.txt": "numpy\n"}
    return make_repo(tmp_path, defaults | {k.replace("__", "/"): v for k, v in files.items()})


def only_problem(report: RepoReport) -> tuple[str, str | None, str]:
    assert len(report.problems) == 1, report.format_problems()
    problem = report.problems[0]
    return problem.code, problem.file, problem.message


def test_a_repo_that_follows_the_contract(tmp_path: Path) -> None:
    # Prepare
    repo = good_repo(tmp_path, **{"data_manager.py": "def load():\n    return 1\n"})

    # Execute
    report = check_repo(repo)

    # Assert
    assert report.ok
    assert report.problems == ()
    assert report.dependencies is not None and report.dependencies.requirements == ("numpy",)
    report.raise_for_problems()
    assert "follows the ML-repo contract" in report.format_problems()


def test_missing_model_manager_file_says_where_one_is(tmp_path: Path) -> None:
    # Prepare
    repo = make_repo(
        tmp_path, {"src/model_manager.py": GOOD_MODEL_MANAGER, "requirements.txt": "numpy\n"}
    )

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == ProblemCode.MISSING_MODEL_MANAGER_FILE == "missing_model_manager_file"
    assert file == "model_manager.py"
    assert "model_manager.py not found at the repo root" in message
    assert "contract" in message
    assert "src/model_manager.py" in message


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    # Prepare
    repo = good_repo(tmp_path, **{"model_manager.py": "import os\n\nclass ModelManager(:\n"})

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == "syntax_error"
    assert file == "model_manager.py"
    assert message.startswith("model_manager.py, line 3: syntax error")


def test_missing_model_manager_class(tmp_path: Path) -> None:
    # Prepare
    source = GOOD_MODEL_MANAGER.replace("class ModelManager(", "class MyModel(")
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == "missing_model_manager_class"
    assert file == "model_manager.py"
    assert "model_manager.py does not define ModelManager" in message


@pytest.mark.parametrize(
    "source",
    [
        "from my_models.impl import Trainer as ModelManager\n",
        "import my_models\nModelManager = my_models.Trainer\n",
        "try:\n    from .impl import ModelManager\nexcept ImportError:\n    ModelManager = None\n",
    ],
)
def test_model_manager_bound_by_import_or_assignment_is_accepted(
    tmp_path: Path, source: str
) -> None:
    # Prepare
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    report = check_repo(repo)

    # Assert
    assert report.ok, report.format_problems()
    assert any("not checked" in warning for warning in report.warnings)


def test_constructor_with_required_arguments(tmp_path: Path) -> None:
    # Prepare
    source = GOOD_MODEL_MANAGER.replace(
        "def __init__(self, learning_rate=0.1):", "def __init__(self, data_path, *, lr, seed=1):"
    )
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == "model_manager_constructor_args"
    assert file == "model_manager.py"
    assert message.startswith("model_manager.py, line 5:")
    assert "'data_path', 'lr'" in message and "seed" not in message
    assert "ModelManager()" in message


def test_dataclass_fields_without_defaults_are_constructor_arguments(tmp_path: Path) -> None:
    # Prepare
    fields = (
        "    epochs: int\n    rate: float = 0.1\n    layers: list = field(default_factory=list)\n"
    )
    source = (
        "from dataclasses import dataclass, field\n\n@dataclass\nclass ModelManager:\n"
        f"{fields}\n{METHODS}"
    )
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    code, _, message = only_problem(check_repo(repo))

    # Assert
    assert code == "model_manager_constructor_args"
    assert "'epochs'" in message and "rate" not in message


def test_missing_methods_names_each_method(tmp_path: Path) -> None:
    # Prepare
    source = GOOD_MODEL_MANAGER.replace("def fit_model(", "def train(").replace(
        "def evaluate_model(", "def test("
    )
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == "missing_methods"
    assert file == "model_manager.py"
    assert "model_manager.py, line 4: class ModelManager" in message
    assert "fit_model(), evaluate_model()" in message
    assert "get_model()" not in message


@pytest.mark.parametrize(
    "header",
    [
        "from flops_utils.ml_repo_templates import ModelManagerTemplate as Base\n"
        "class ModelManager(Base):",
        "import flops_utils.ml_repo_templates as t\nclass ModelManager(t.ModelManagerTemplate):",
        "from abc import ABC\nclass ModelManager(ABC):",
        "class ModelManager(object):",
    ],
)
def test_bases_without_implementations_do_not_hide_missing_methods(
    tmp_path: Path, header: str
) -> None:
    # Prepare
    source = f"{header}\n    def get_model(self):\n        return None\n"
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    code, _, message = only_problem(check_repo(repo))

    # Assert
    assert code == "missing_methods"
    assert "set_model_data()" in message and "get_model()," not in message


def test_methods_from_a_same_file_base_count(tmp_path: Path) -> None:
    # Prepare
    source = GOOD_MODEL_MANAGER.replace("class ModelManager(", "class Base(") + (
        "\n\nclass ModelManager(Base):\n    pass\n"
    )
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    report = check_repo(repo)

    # Assert
    assert report.ok, report.format_problems()


def test_methods_that_may_come_from_an_unknown_base_are_not_flagged(tmp_path: Path) -> None:
    # Prepare
    source = "from my_lib import TorchManager\n\nclass ModelManager(TorchManager):\n    pass\n"
    repo = good_repo(tmp_path, **{"model_manager.py": source})

    # Execute
    report = check_repo(repo)

    # Assert
    assert report.ok, report.format_problems()
    assert any("inherited methods not checked" in warning for warning in report.warnings)


def test_missing_dependency_file_lists_accepted_names(tmp_path: Path) -> None:
    # Prepare
    repo = make_repo(tmp_path, {"model_manager.py": GOOD_MODEL_MANAGER})

    # Execute
    report = check_repo(repo)
    code, file, message = only_problem(report)

    # Assert
    assert code == "missing_dependency_file"
    assert file is None
    for name in ("requirements.txt", "pyproject.toml", "conda.yaml", "environment.yml"):
        assert name in message
    assert report.dependencies is None


def test_invalid_dependency_file_names_file_and_line(tmp_path: Path) -> None:
    # Prepare
    repo = good_repo(tmp_path, **{"requirements.txt": "numpy\ntorch>=\n"})

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == "invalid_dependency_file"
    assert file == "requirements.txt"
    assert message.startswith("requirements.txt, line 2:")


def test_conda_only_package_is_named(tmp_path: Path) -> None:
    # Prepare
    conda = "dependencies:\n  - python=3.11\n  - numpy\n  - cudatoolkit=11.8\n"
    repo = make_repo(tmp_path, {"model_manager.py": GOOD_MODEL_MANAGER, "conda.yaml": conda})

    # Execute
    report = check_repo(repo)
    code, file, message = only_problem(report)

    # Assert
    assert code == "conda_only_package"
    assert file == "conda.yaml"
    assert "conda.yaml: conda package 'cudatoolkit' has no PyPI equivalent" in message
    assert "pip:" in message
    assert report.dependencies is not None and report.dependencies.requirements == ("numpy",)


def test_conda_packages_unknown_to_the_package_index_are_conda_only(tmp_path: Path) -> None:
    # Prepare
    simple = tmp_path / "simple"
    (simple / "numpy").mkdir(parents=True)
    conda = "dependencies:\n  - numpy\n  - pytorch\n  - libfoo\n"
    repo = make_repo(tmp_path, {"model_manager.py": GOOD_MODEL_MANAGER, "conda.yaml": conda})

    # Execute
    with PackageIndex(simple.as_uri(), timeout=5) as index:
        code, _, message = only_problem(check_repo(repo, package_index=index))

    # Assert
    assert code == "conda_only_package"
    assert "'libfoo'" in message


def test_unreachable_package_index_is_a_warning(tmp_path: Path) -> None:
    # Prepare
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conda = "dependencies:\n  - libfoo\n"
    repo = make_repo(tmp_path, {"model_manager.py": GOOD_MODEL_MANAGER, "conda.yaml": conda})

    # Execute
    with PackageIndex(f"http://127.0.0.1:{port}/simple", timeout=5, retries=0) as index:
        report = check_repo(repo, package_index=index)

    # Assert
    assert report.ok
    assert report.dependencies is not None and report.dependencies.requirements == ("libfoo",)
    assert any("unavailable" in warning for warning in report.warnings)


def test_data_manager_syntax_error(tmp_path: Path) -> None:
    # Prepare
    repo = good_repo(tmp_path, **{"data_manager.py": "def load(:\n    pass\n"})

    # Execute
    code, file, message = only_problem(check_repo(repo))

    # Assert
    assert code == "data_manager_syntax_error"
    assert file == "data_manager.py"
    assert message.startswith("data_manager.py, line 1: syntax error")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # Prepare
    source = "class ModelManager:\n    def __init__(self, path):\n        pass\n"
    repo = make_repo(
        tmp_path,
        {
            "model_manager.py": source,
            "data_manager.py": "x = (\n",
            "environment.yml": "dependencies:\n  - numpy\n  - _libgcc_mutex\n  - mkl\n",
        },
    )
    report = check_repo(repo)

    # Execute
    with pytest.raises(RepoContractError) as caught:
        report.raise_for_problems()

    # Assert
    codes = [problem.code for problem in report.problems]
    assert codes == [
        "model_manager_constructor_args",
        "missing_methods",
        "data_manager_syntax_error",
        "conda_only_package",
    ]
    assert not report.ok
    lines = str(caught.value).splitlines()
    assert lines[0] == "the repo breaks the ML-repo contract (4 problem(s)):"
    assert lines[1:] == [f"- {problem}" for problem in report.problems]
    assert caught.value.problems == report.problems
    formatted = report.format_problems()
    assert all(problem.message in formatted for problem in report.problems)


def test_not_a_directory(tmp_path: Path) -> None:
    # Execute / Assert
    with pytest.raises(NotADirectoryError):
        check_repo(tmp_path / "nothing")
