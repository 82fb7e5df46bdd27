"""Build contexts: the same content gives the same files and metadata, whatever the copy."""

from __future__ import annotations

import os
import time
from pathlib import Path

from image_builder.build_context import FIXED_MTIME, stage_project_context


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        found[path.relative_to(root).as_posix()] = (int(info.st_mtime), info.st_mode, content)
    return found


def _repo(folder: Path) -> Path:
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "model_manager.cpython-311.pyc").write_bytes(b"\0")
    (folder / "model_manager.py").write_text("class ModelManager: ...\n")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o700)
    return folder


def test_staging_twice_gives_identical_contexts(tmp_path: Path) -> None:
    # Prepare
    repo = _repo(tmp_path / "repo")
    runtime = {"flops_utils": Path(__file__).resolve().parents[2] / "flops_utils"}

    # Execute
    stage_project_context(tmp_path / "a", repo_dir=repo, runtime_dirs=runtime, lock=["x==1"])
    time.sleep(0.01)
    os.utime(repo / "model_manager.py")  # a fresh checkout: new times, same content
    stage_project_context(tmp_path / "b", repo_dir=repo, runtime_dirs=runtime, lock=["x==1"])

    # Assert
    a, b = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b")
    assert a == b
    assert {mtime for mtime, _, _ in a.values()} == {FIXED_MTIME}
    assert a["flops-requirements.lock"][2] == b"x==1\n"
    assert a["app/run.sh"][1] & 0o777 == 0o755
    assert a["app/model_manager.py"][1] & 0o777 == 0o644
    assert "flops-runtime/flops_utils/ml_repo_templates.py" in a
    assert not [name for name in a if ".git" in name.split("/") or "__pycache__" in name]
