"""Import a repo's `ModelManager` and call into it with errors that name the culprit."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flops_core.errors import PermanentError
from flops_core.flops_tree import RUNTIME_PACKAGES

__all__ = ["UserCodeError", "call_user_code", "load_model_manager"]

T = TypeVar("T")

_ROOT = Path(__file__).resolve().parents[1]
_NOT_USER_CODE = (
    *(str(_ROOT / pkg) for pkg in RUNTIME_PACKAGES),
    str(Path(importlib.__file__).parents[1]),
    "<frozen",
    *(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))),
)


class UserCodeError(PermanentError):
    """Raised when the repo's own code fails to import or raises while FLOps calls it."""


def load_model_manager(repo_dir: Path) -> Any:
    """Import `model_manager.py` from `repo_dir` and return a new `ModelManager()`.

    Parameters
    ----------
    repo_dir : Path
        Root of the ML repo checkout; it is put first on `sys.path` so that the repo's own
        modules (`data_manager.py`, ...) import as they do when the user runs them.
    """
    repo_dir = repo_dir.resolve()
    if not (repo_dir / "model_manager.py").is_file():
        raise UserCodeError(f"{repo_dir}/model_manager.py not found: the repo must define it")
    if str(repo_dir) not in sys.path:
        sys.path.insert(0, str(repo_dir))
    module = call_user_code("importing model_manager.py", importlib.import_module, "model_manager")
    cls = getattr(module, "ModelManager", None)
    if cls is None:
        raise UserCodeError("model_manager.py defines no `ModelManager`")
    return call_user_code("ModelManager()", cls)


def call_user_code(what: str, func: Callable[..., T], *args: Any) -> T:
    """Call `func(*args)`; turn any exception into a `UserCodeError` that says where it came from.

    The message names `what` was being done, the exception, and the innermost frame inside
    the user's code, so that an operator can act on it without reading a full traceback.
    """
    try:
        return func(*args)
    except UserCodeError:
        raise
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        raise UserCodeError(f"{what} raised {type(e).__name__}: {e}{_where(e)}") from e


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    user_frames = [f for f in frames if not f.filename.startswith(_NOT_USER_CODE)]
    if not user_frames:
        return ""
    frame = user_frames[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno})"
