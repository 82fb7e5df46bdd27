"""An aggregator that cannot run its configuration says why and exits with code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flops_aggregator.app import run_aggregator
from flops_aggregator.config import AggregatorConfig
from flops_core.errors import ConfigurationError
from flops_core.events import EventReporter

ROOT = Path(__file__).resolve().parents[2]


def test_a_repo_that_breaks_the_contract_is_a_configuration_error(tmp_path: Path) -> None:
    # Prepare: an empty checkout, no model_manager.py
    config = AggregatorConfig(project_id="p", repo_dir=tmp_path)
    reporter = EventReporter(project_id="p", source="aggregator", callback_url=None)
    # Execute
    with pytest.raises(ConfigurationError) as caught:
        run_aggregator(config, reporter=reporter)
    # Assert
    assert "model_manager.py" in str(caught.value)
    assert caught.value.exit_code == 2


def test_the_aggregator_process_exits_with_2_and_the_reason(tmp_path: Path) -> None:
    # Execute
    done = subprocess.run(
        [sys.executable, "-m", "flops_aggregator", "--project-id", "p", "--repo-dir", tmp_path],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    # Assert
    assert done.returncode == 2, done.stderr
    assert "problem(s) with the ML-repo contract" in done.stderr.split("error: ", 1)[1]
    assert "model_manager.py" in done.stderr
