"""The on-disk cache of environments: one folder per key, a lock file and a completion marker."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flops_core.logs import get_logger

__all__ = ["MARKER_NAME", "EnvironmentCache"]

_logger = get_logger("manager.environments")

#: Written last into a finished environment; an environment without it does not exist.
MARKER_NAME = "flops-environment.json"

_STAGING = ".build-"


class EnvironmentCache:
    """Environments under `root`: `<key>/` (complete), `<key>.lock`, `.<key>.build-*/` (building).

    An environment is built in a staging folder next to its final place and renamed into
    place once its marker is written, so `<key>/` exists only when complete. Whoever builds
    or removes `<key>` holds an exclusive `fcntl.flock` on `<key>.lock` (lock files stay:
    deleting one while another process waits on it would let two builders in).

    Parameters
    ----------
    root : Path
        The cache folder; created when missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The folder of the environment `key`."""
        return self.root / key

    def is_complete(self, key: str) -> bool:
        """Whether the environment `key` is fully built."""
        return (self.path(key) / MARKER_NAME).is_file()

    def read_marker(self, key: str) -> dict[str, Any]:
        """The metadata written when `key` was built; {} when missing or unreadable."""
        try:
            data = json.loads((self.path(key) / MARKER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def touch(self, key: str) -> None:
        """Mark `key` as just used, for `prune`."""
        with contextlib.suppress(OSError):
            os.utime(self.path(key) / MARKER_NAME)

    @contextlib.contextmanager
    def lock(self, key: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the exclusive lock of `key` (threads and processes alike) inside the block.

        Parameters
        ----------
        key : str
            The environment.
        on_wait : Callable[[], None] | None
            Called once before blocking when someone else holds the lock.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    def new_staging(self, key: str) -> Path:
        """A fresh, empty staging folder for `key`; call with the lock held.

        Staging folders of `key` left by a crashed build are removed first.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f".{key}{_STAGING}*"):
            _logger.info("removing the remains of an interrupted build: %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}{_STAGING}", dir=self.root))
        staging.chmod(0o755)  # mkdtemp makes it private; the venv is not secret
        return staging

    def publish(self, key: str, staging: Path, marker: dict[str, Any]) -> Path:
        """Write the marker into `staging` (atomically) and rename it to `key`'s folder.

        Absolute paths of the staging folder that `venv` and pip wrote into the venv (script
        shebangs, activation scripts, `pyvenv.cfg`) are rewritten to the final folder first.
        Call with the lock held.
        """
        final = self.path(key)
        _relocate(staging, final)
        tmp = staging / f".{MARKER_NAME}.tmp"
        tmp.write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, staging / MARKER_NAME)
        if final.exists():  # a folder without marker: not from this cache's own builds
            shutil.rmtree(final)
        os.rename(staging, final)
        return final

    def discard(self, staging: Path) -> None:
        """Delete a staging folder whose build failed."""
        shutil.rmtree(staging, ignore_errors=True)

    def keys(self) -> list[str]:
        """The keys of all complete environments, least recently used first."""
        found = [p for p in self.root.glob(f"*/{MARKER_NAME}") if not p.parent.name.startswith(".")]
        found.sort(key=lambda p: _mtime(p))
        return [p.parent.name for p in found]

    def remove(self, key: str) -> bool:
        """Delete the environment `key`, waiting for a build of it to end; False if absent."""
        with self.lock(key):
            path = self.path(key)
            if not path.exists():
                return False
            # Rename first, so that a crash half-way never leaves a folder with a marker.
            doomed = Path(tempfile.mkdtemp(prefix=f".{key}{_STAGING}", dir=self.root))
            os.rename(path, doomed / key)
            shutil.rmtree(doomed, ignore_errors=True)
            _logger.info("removed environment %s", key)
            return True

    def prune(self, keep: int) -> list[str]:
        """Delete all but the `keep` most recently used environments; return deleted keys."""
        keys = self.keys()
        doomed = keys[: max(0, len(keys) - keep)]
        return [key for key in doomed if self.remove(key)]


def _relocate(staging: Path, final: Path) -> None:
    old, new = os.fsencode(staging), os.fsencode(final)
    candidates = [staging / "pyvenv.cfg", *(staging / "bin").iterdir()]
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data[:1024]:
            path.write_bytes(data.replace(old, new))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
