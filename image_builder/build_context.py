"""Stage a build context whose files are the same bytes and metadata whenever content is.

Buildah decides whether a `COPY` step can come from the layer cache by the content it
copies, file metadata included; a fresh checkout or copy has fresh modification times. So
every staged file gets one fixed modification time and normalised permissions: a
`COPY` of unchanged content is then recognised as unchanged across builds and commits.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from image_builder.project_containerfile import APP_DIR, LOCK_FILE, RUNTIME_CODE_DIR

__all__ = ["FIXED_MTIME", "normalize_tree", "stage_project_context", "write_lines"]

#: 1980-01-01T00:00:00Z, the earliest time ZIP (wheels) can store; any constant would do.
FIXED_MTIME = 315532800

_SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def stage_project_context(
    context: Path,
    *,
    repo_dir: Path,
    runtime_dirs: Mapping[str, Path],
    lock: Sequence[str],
) -> None:
    """Fill the empty (or missing) folder `context` for the project Containerfiles.

    Parameters
    ----------
    context : Path
        The build context to create.
    repo_dir : Path
        The checkout; copied to `app/` without `.git` and caches.
    runtime_dirs : Mapping[str, Path]
        FLOps package name to its source folder; copied to `flops-runtime/<name>/`.
    lock : Sequence[str]
        The repo's pinned requirements, written to `flops-requirements.lock`.
    """
    context.mkdir(parents=True, exist_ok=True)
    write_lines(context / LOCK_FILE, lock)
    runtime = context / RUNTIME_CODE_DIR
    runtime.mkdir()
    for name, source in sorted(runtime_dirs.items()):
        _copy_tree(source, runtime / name)
    _copy_tree(repo_dir, context / APP_DIR)
    normalize_tree(context)


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write `lines`, one per line, to `path`."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def normalize_tree(root: Path) -> None:
    """Give every file and folder under `root` (and `root`) `FIXED_MTIME` and plain modes.

    Folders and executable files get 0755, other files 0644; symbolic links are kept as
    they are, only their own time is set.
    """
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in [*files, *dirs]:
            _normalize(Path(folder) / name)
    _normalize(root)


def _normalize(path: Path) -> None:
    info = path.lstat()
    if not stat.S_ISLNK(info.st_mode):
        executable = stat.S_ISDIR(info.st_mode) or info.st_mode & stat.S_IXUSR
        path.chmod(0o755 if executable else 0o644)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)


def _copy_tree(source: Path, target: Path) -> None:
    def ignore(_folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _SKIPPED_NAMES or n.endswith(_SKIPPED_SUFFIXES)}

    shutil.copytree(source, target, symlinks=True, ignore=ignore)
