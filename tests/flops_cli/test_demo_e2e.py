"""`flops demo`, the README's main command, end to end: real manager, MLflow, learners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FLOPS = Path(sys.executable).parent / "flops"


def _processes_under(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


def test_demo_trains_and_reports_the_accuracy(tmp_path: Path) -> None:
    # Prepare
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    data_dir = tmp_path / "demo"

    # Execute
    result = subprocess.run(
        [str(FLOPS), "demo", "--rounds", "2", "--learners", "2", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip

    # Assert
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "accuracy" in output.lower()
    assert "champion" in output
    assert not _processes_under(data_dir)
