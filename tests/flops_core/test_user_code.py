"""Failures in a repo's own code are reported with the method, the exception and the line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_core.user_code import UserCodeError, call_user_code, load_model_manager


@pytest.fixture(autouse=True)
def _forget_model_manager() -> Iterator[None]:
    yield
    sys.modules.pop("model_manager", None)


def test_missing_model_manager_file(tmp_path: Path) -> None:
    with pytest.raises(UserCodeError, match=r"model_manager\.py not found"):
        load_model_manager(tmp_path)


def test_import_error_names_the_module_and_line(tmp_path: Path) -> None:
    (tmp_path / "model_manager.py").write_text("import os\nimport not_installed_pkg\n")
    with pytest.raises(UserCodeError) as error:
        load_model_manager(tmp_path)
    message = str(error.value)
    assert "importing model_manager.py raised ModuleNotFoundError" in message
    assert "not_installed_pkg" in message
    assert "(at model_manager.py:2)" in message


def test_constructor_error_is_attributed(tmp_path: Path) -> None:
    (tmp_path / "model_manager.py").write_text(
        "class ModelManager:\n    def __init__(self):\n        raise ValueError('bad')\n"
    )
    with pytest.raises(UserCodeError, match=r"ModelManager\(\) raised ValueError: bad"):
        load_model_manager(tmp_path)


def test_call_user_code_passes_results_through() -> None:
    assert call_user_code("sum", sum, [1, 2]) == 3
