"""ML repos for tests: an example of `examples/` made into a one-commit Git repo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["example_repo"]

ROOT = Path(__file__).resolve().parents[1]


def example_repo(dest: Path, example: str = "sklearn-digits", *, append: str = "") -> str:
    """Copy `examples/<example>` to `dest`, commit it, and return its file:// URL.

    `append` is added to the end of its `model_manager.py` first (e.g. to slow its rounds).
    """
    shutil.copytree(ROOT / "examples" / example, dest)
    if append:
        with (dest / "model_manager.py").open("a") as model_manager:
            model_manager.write(append)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "example"]):
        subprocess.run([*git, *args], cwd=dest, check=True)
    return f"file://{dest}"
