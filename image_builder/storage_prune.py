"""Keep Buildah's storage, the builders' layer cache, under a size limit.

Design. Builds leave images behind: pulled flavour bases, the cached layers of every built
commit and each build's own images (untagged once their manifest list is removed). With vfs
storage every layer is a full copy of the file system, so the storage grows by GBs a commit.
After a build, `BuildCache.prune` measures the graph root on disk (`storage_usage`); over the
limit, it removes whole images in `removal_order` — untagged ones first (older builds'
images; `buildah rmi` takes their untagged parents, the cached layers, with them), then
tagged ones (pulled bases), least recently built first — and measures again, until the
storage is under the limit or nothing is left to remove. Buildah's image sizes count shared
layers in every image, so they only decide how many images to remove before the next
measurement. Builds that share the storage hold `StorageLock` (shared) while they run; a
build prunes only when it can take that lock exclusively, so no running build loses an
image it uses, and it reports `cache_pruned` (or why it did not prune). Pruning never fails
a build: an error becomes a `warning` event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flops_core.events import EventReporter, EventType
from flops_core.logs import get_logger
from image_builder.buildah import Buildah
from image_builder.errors import ImageBuilderError
from image_builder.storage_usage import LOCK_NAME, StorageLock, storage_bytes

__all__ = [
    "MB",
    "BuildCache",
    "CachedImage",
    "PruneOutcome",
    "parse_images",
    "plan_removals",
    "removal_order",
]

#: A megabyte as the limit counts it (and Buildah prints sizes): 10^6 bytes.
MB = 1_000_000
#: Why a build over the limit did not prune.
BUSY = "another build is using the cache"

_log = get_logger("image_builder.cache")
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([kKMGTP]?)B\s*$")
_UNITS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


@dataclass(frozen=True)
class CachedImage:
    """One image `buildah images` lists (intermediate layers of other images are not listed).

    Parameters
    ----------
    image_id : str
        The image id.
    names : tuple[str, ...]
        Its tags; none for a build's own image once its manifest list is removed.
    created : float
        When it was built, in seconds since the epoch.
    size : int
        Bytes, as Buildah estimates them (layers shared with other images count in each).
    """

    image_id: str
    names: tuple[str, ...]
    created: float
    size: int

    @property
    def label(self) -> str:
        """How events name it: its first tag, else its short id."""
        return self.names[0] if self.names else self.image_id[:12]


@dataclass(frozen=True)
class PruneOutcome:
    """What one prune did: sizes on disk before and after, what went, how long it took."""

    bytes_before: int
    bytes_after: int
    limit_bytes: int
    removed: tuple[str, ...]
    duration_s: float
    skipped: str | None = None

    def event_data(self) -> dict[str, Any]:
        """The `cache_pruned` event's data."""
        return {**asdict(self), "removed": list(self.removed)}


def parse_images(output: str) -> list[CachedImage]:
    """The images in the output of `buildah images --json` (log lines before it are skipped).

    Raises
    ------
    ValueError
        When the output holds no JSON list of images.
    """
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), None)
    if start is None:
        if any(line.strip() == "null" for line in lines) or not output.strip():
            return []
        raise ValueError(f"unexpected output of buildah images: {output[-200:]!r}")
    images: list[CachedImage] = []
    for item in json.loads("\n".join(lines[start:])) or []:
        created = item.get("created")
        images.append(
            CachedImage(
                image_id=str(item["id"]),
                names=tuple(str(name) for name in item.get("names") or ()),
                created=float(created) if isinstance(created, int | float) else 0.0,
                size=_size_bytes(item.get("size")),
            )
        )
    return images


def removal_order(images: Iterable[CachedImage]) -> list[CachedImage]:
    """Untagged images before tagged ones, each least recently built first."""
    return sorted(images, key=lambda image: (bool(image.names), image.created, image.image_id))


def plan_removals(
    images: Iterable[CachedImage], *, excess: int, skip: Collection[str] = ()
) -> list[CachedImage]:
    """The next images to remove: in `removal_order`, until their sizes add up to `excess`.

    Parameters
    ----------
    images : Iterable[CachedImage]
        What the storage holds.
    excess : int
        Bytes over the limit; nothing is planned when it is not positive.
    skip : Collection[str]
        Ids of images not to plan (already tried).
    """
    planned: list[CachedImage] = []
    freed = 0
    for image in removal_order(i for i in images if i.image_id not in skip):
        if freed >= excess:
            break
        planned.append(image)
        freed += max(image.size, 1)
    return planned


class BuildCache:
    """Buildah's storage as the layer cache of builds: held while building, pruned after.

    Parameters
    ----------
    buildah : Buildah
        The Buildah adapter (its storage is the cache).
    max_bytes : int
        The limit; 0 never prunes (and takes no lock).
    reporter : EventReporter
        Receives `cache_pruned` and `warning` events.
    project_id : str
        On every log line.
    lock_timeout : float
        Seconds a build waits for another builder's prune to end before it goes on anyway
        (and then does not prune itself).
    """

    def __init__(
        self,
        buildah: Buildah,
        *,
        max_bytes: int,
        reporter: EventReporter,
        project_id: str,
        lock_timeout: float = 1800.0,
    ) -> None:
        self.max_bytes = max_bytes
        self._buildah = buildah
        self._reporter = reporter
        self._project_id = project_id
        self._lock_timeout = lock_timeout
        self._root: Path | None = None
        self._lock: StorageLock | None = None

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the storage's shared lock for the build inside; `prune` needs it."""
        lock = self._acquire() if self.max_bytes > 0 else None
        self._lock = lock
        try:
            yield
        finally:
            self._lock = None
            if lock is not None:
                lock.release()

    def prune(self) -> PruneOutcome | None:
        """Over the limit, remove images until under it; report and return what was done.

        None when nothing was measured or the storage is under the limit. Never raises
        `Exception`: a failure is reported as a `warning` event.
        """
        if self._lock is None or self._root is None:
            return None
        started = time.monotonic()
        try:
            before = storage_bytes(self._root)
            if before <= self.max_bytes:
                _log.info(
                    "project=%s build cache %s, under its limit of %s",
                    self._project_id,
                    _mb(before),
                    _mb(self.max_bytes),
                )
                return None
            if self._lock.try_exclusive():
                after, removed = self._shrink(self._root, before)
                skipped = None
            else:
                after, removed, skipped = before, [], BUSY
        except Exception as e:  # a prune must not fail the build
            reason = e.reason if isinstance(e, ImageBuilderError) else f"{type(e).__name__}: {e}"
            _log.warning("project=%s pruning the build cache failed: %s", self._project_id, reason)
            self._reporter.report(
                EventType.WARNING, reason=f"pruning the image builder's cache failed: {reason}"
            )
            return None
        seconds = round(time.monotonic() - started, 3)
        outcome = PruneOutcome(before, after, self.max_bytes, tuple(removed), seconds, skipped)
        _log.info(
            "project=%s build cache %s -> %s (limit %s) in %.1f s, %d images removed%s",
            self._project_id,
            _mb(before),
            _mb(after),
            _mb(self.max_bytes),
            outcome.duration_s,
            len(removed),
            f"; not pruned: {skipped}" if skipped else "",
        )
        self._reporter.report(EventType.CACHE_PRUNED, **outcome.event_data())
        return outcome

    def _acquire(self) -> StorageLock | None:
        try:
            self._root = self._buildah.storage_root()
            lock = StorageLock(self._root / LOCK_NAME)
            if lock.acquire_shared(timeout=self._lock_timeout):
                return lock
            problem = f"another builder's prune took longer than {self._lock_timeout:g} s"
        except (ImageBuilderError, OSError) as e:
            problem = e.reason if isinstance(e, ImageBuilderError) else str(e)
        _log.warning(
            "project=%s build cache not locked, so not pruned after this build: %s",
            self._project_id,
            problem,
        )
        return None

    def _shrink(self, root: Path, size: int) -> tuple[int, list[str]]:
        """Remove images until `root` is under the limit or none is left; new size, removed."""
        removed: list[str] = []
        tried: set[str] = set()
        while size > self.max_bytes:
            images = parse_images(self._buildah.list_images())
            planned = plan_removals(images, excess=size - self.max_bytes, skip=tried)
            if not planned:
                break
            for image in planned:
                tried.add(image.image_id)
                # By id (a leftover manifest list is not found by its name), unless Buildah
                # wants the names: it refuses to remove an image with several by its id.
                references = image.names if len(image.names) > 1 else (image.image_id,)
                try:
                    self._buildah.remove_image(*references)
                except ImageBuilderError as e:
                    _log.warning(
                        "project=%s cannot remove %s: %s", self._project_id, image.label, e.reason
                    )
                    continue
                removed.append(image.label)
            size = storage_bytes(root)
        return size, removed


def _size_bytes(value: object) -> int:
    """Bytes of Buildah's size: a number, or a string like `318 MB` (decimal units)."""
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.match(str(value or ""))
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else 0


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"
