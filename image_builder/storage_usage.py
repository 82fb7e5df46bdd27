"""Buildah's storage on disk: how much it takes, and the lock builders sharing it agree on.

Several builders may use one storage at once (two projects building on one Docker host share
the cache volume). Each holds a shared `flock` on `<graph root>/flops-builds.lock` while it
builds; only a builder that gets the lock exclusively, without waiting, may remove images,
so that no image a running build uses (its base, its cached layers) disappears under it. A
builder that starts while another prunes waits for the prune to end. `flock` locks live on
the inode, so they hold across containers that mount the same volume, and they are dropped
by the kernel when a builder dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from flops_core.logs import get_logger

__all__ = ["LOCK_NAME", "StorageLock", "storage_bytes"]

#: The lock file in Buildah's graph root.
LOCK_NAME = "flops-builds.lock"

_log = get_logger("image_builder.storage")


def storage_bytes(root: Path) -> int:
    """Bytes that `root` takes on disk (allocated blocks, like `du -sx`); 0 if it is missing.

    Hard-linked files count once; mounts below `root` (an overlay container's merged
    view) are not entered; files that vanish while they are counted are skipped.

    Parameters
    ----------
    root : Path
        A directory, e.g. Buildah's graph root.
    """
    try:
        device = root.stat().st_dev
    except OSError:
        return 0
    total = 0
    linked: set[int] = set()
    pending = [str(root)]
    while pending:
        folder = pending.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_dev != device:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif info.st_nlink > 1:  # a hard-linked file: count its blocks once
                    if info.st_ino in linked:
                        continue
                    linked.add(info.st_ino)
                total += info.st_blocks * 512
    return total


class StorageLock:
    """The builders' lock on one Buildah storage: shared while building, exclusive to prune.

    Parameters
    ----------
    path : Path
        The lock file; created (with its folder) when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire_shared(self, *, timeout: float, poll: float = 1.0) -> bool:
        """Take the shared lock, waiting at most `timeout` seconds for a prune to end.

        Returns False when the wait timed out (the lock is not held then).

        Raises
        ------
        OSError
            When the lock file cannot be created or locked.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            if self._lock(fcntl.LOCK_SH):
                return True
            if time.monotonic() >= deadline:
                self.release()
                return False
            if not waiting:
                _log.info("waiting for another builder to finish pruning %s", self.path.parent)
                waiting = True
            time.sleep(poll)

    def try_exclusive(self) -> bool:
        """Turn the shared lock into an exclusive one if no other builder holds it.

        When this fails the shared lock is lost too (Linux converts a `flock` by dropping
        it first), which is harmless at the end of a build, the only place this is called.
        """
        return self._fd is not None and self._lock(fcntl.LOCK_EX)

    def release(self) -> None:
        """Drop the lock (whichever is held) and close the file."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases its flock
            self._fd = None

    def _lock(self, mode: int) -> bool:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        return True
