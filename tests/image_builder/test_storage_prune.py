"""Pruning the builders' Buildah storage: which images go, in which order, and what is reported.

The decision logic is tested on image lists; the prune loop against a fake `buildah` that keeps
a storage on disk (one folder of bytes per image) and removes images as Buildah does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flops_core.events import EventReporter
from image_builder.build_job import BuildRequest, ImageBuildJob
from image_builder.buildah import Buildah, BuildahSettings
from image_builder.errors import BuildStepError
from image_builder.pip_resolver import PipSettings
from image_builder.storage_prune import (
    MB,
    BuildCache,
    CachedImage,
    parse_images,
    plan_removals,
    removal_order,
)
from image_builder.storage_usage import LOCK_NAME, StorageLock, storage_bytes
from tests.conftest import EventReceiver

# What Buildah 1.28 prints for `buildah images --json` here (a base pulled by digest, a
# build's untagged image), after a warning line it may print on the same stream.
IMAGES_JSON = """\
WARN[0000] "/" is not a shared mount, this could cause issues
[
    {
        "id": "e4d913d26a8e",
        "names": [
            "127.0.0.1:5050/flops/debian-python@sha256:446d4014ca53283f975befcc65687a18122ae13e"
        ],
        "digest": "sha256:446d4014ca53283f975befcc65687a18122ae13e3d0c90db80635efd41aaf41b",
        "createdat": "7 hours ago",
        "size": "115 MB",
        "created": 1795352203,
        "createdatraw": "2026-11-22T12:56:43.373078181Z",
        "readonly": false,
        "history": null
    },
    {
        "id": "2fb9af7320fe",
        "names": null,
        "digest": "sha256:0c2f6fa1b1e4b5b8d6d0e2f6a1d3c7a3e9f1b2c4d5e6f708192a3b4c5d6e7f80",
        "createdat": "About a minute ago",
        "size": "560 B",
        "created": 1795376132,
        "createdatraw": "2026-11-22T19:35:32.004112113Z",
        "readonly": false,
        "history": null
    }
]"""

FAKE_BUILDAH = r'''#!{python}
"""A Buildah storage in miniature: images.json and one folder of bytes per image."""
import json, shutil, sys
from pathlib import Path
state = Path({state!r})
root = state / "graph"
args = [a for a in sys.argv[1:] if a not in ("--storage-driver", "vfs")]
images = json.loads((state / "images.json").read_text())
if args[0] == "info":
    print(root)
elif args[0] == "images":
    if (state / "images-fail").exists():
        print("Error: reading images: database is locked"); sys.exit(125)
    print(json.dumps([{{k: i[k] for k in ("id", "names", "created", "size")}} for i in images]))
elif args[0] == "rmi":
    known = list(images)
    for ref in args[1:]:
        image = next(i for i in known if ref == i["id"] or ref in (i["names"] or []))
        if ref == image["id"] and len(image["names"] or []) > 1:
            print(f"Error: unable to delete image {{ref}} by ID with more than one tag")
            sys.exit(125)
        if image.get("in_use"):
            print(f"Error: image {{ref}} is in use by a container"); sys.exit(2)
        if image not in images:
            continue  # its other name was removed already
        images.remove(image)
        shutil.rmtree(root / "vfs" / image["id"])
    (state / "images.json").write_text(json.dumps(images))
'''


def _image(image_id: str, created: float, size: int = MB, *names: str) -> CachedImage:
    return CachedImage(image_id=image_id, names=names, created=created, size=size)


class FakeStorage:
    """A storage of images on disk, and a `Buildah` adapter whose `buildah` works on it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images: list[dict[str, object]] = []
        script = folder / "bin" / "buildah"
        script.parent.mkdir(parents=True)
        script.write_text(FAKE_BUILDAH.format(python=sys.executable, state=str(folder)))
        script.chmod(0o755)
        env = {**os.environ, "PATH": f"{script.parent}:{os.environ['PATH']}"}
        self.buildah = Buildah(BuildahSettings(storage_driver="vfs", environment=env))
        self.root = folder / "graph"
        self.save()

    def add(
        self, image_id: str, created: int, size: int, *names: str, in_use: bool = False
    ) -> None:
        """An image of `size` bytes on disk (Buildah reports it in kB, as it prints sizes)."""
        (self.root / "vfs" / image_id).mkdir(parents=True)
        (self.root / "vfs" / image_id / "layer").write_bytes(b"\1" * size)
        entry = {"id": image_id, "names": list(names) or None, "created": created}
        self.images.append({**entry, "size": f"{size / 1000:g} kB", "in_use": in_use})
        self.save()

    def left(self) -> list[str]:
        """Ids of the images still stored."""
        return [str(i["id"]) for i in json.loads((self.folder / "images.json").read_text())]

    def save(self) -> None:
        (self.folder / "images.json").write_text(json.dumps(self.images))


def _cache(storage: FakeStorage, events: EventReceiver, limit: int) -> BuildCache:
    reporter = EventReporter(project_id="p1", source="builder", callback_url=events.url)
    return BuildCache(storage.buildah, max_bytes=limit, reporter=reporter, project_id="p1")


def _close(cache: BuildCache) -> None:
    cache._reporter.close()


def test_untagged_images_go_first_then_tagged_ones_least_recently_built_first() -> None:
    # Prepare: two pulled bases and three builds' untagged images, listed out of order.
    images = [
        _image("base-new", 300, MB, "r/flops/base-sklearn@sha256:2"),
        _image("build-3", 250),
        _image("base-old", 100, MB, "r/flops/base-sklearn@sha256:1"),
        _image("build-1", 150),
        _image("build-2", 200),
    ]

    # Execute
    order = removal_order(images)

    # Assert
    assert [i.image_id for i in order] == ["build-1", "build-2", "build-3", "base-old", "base-new"]


def test_only_as_many_images_as_the_excess_needs_are_planned() -> None:
    # Prepare: 5 MB over the limit; the oldest build's image is 3 MB, the next 4 MB.
    images = [_image("b1", 1, 3 * MB), _image("b2", 2, 4 * MB), _image("b3", 3, 9 * MB)]

    # Execute
    plan = plan_removals(images, excess=5 * MB)
    nothing = plan_removals(images, excess=0)
    rest = plan_removals(images, excess=50 * MB, skip={"b1", "b2"})

    # Assert: the two oldest cover the excess; tried images are not planned again.
    assert [i.image_id for i in plan] == ["b1", "b2"]
    assert nothing == []
    assert [i.image_id for i in rest] == ["b3"]


def test_buildah_image_listing_is_read_after_log_lines() -> None:
    # Execute
    images = parse_images(IMAGES_JSON)

    # Assert
    assert images[0] == _image(
        "e4d913d26a8e",
        1795352203,
        115 * MB,
        "127.0.0.1:5050/flops/debian-python@sha256:446d4014ca53283f975befcc65687a18122ae13e",
    )
    assert images[1] == _image("2fb9af7320fe", 1795376132, 560)
    assert images[1].label == "2fb9af7320fe"
    assert parse_images("") == []
    with pytest.raises(ValueError, match="unexpected output"):
        parse_images("Error: something else")


def test_storage_size_counts_blocks_and_hard_links_once(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big").write_bytes(b"\1" * 300_000)
    os.link(tmp_path / "a" / "big", tmp_path / "big-again")
    empty = storage_bytes(tmp_path / "missing")

    # Execute
    size = storage_bytes(tmp_path)

    # Assert: the file once (in 4 kB blocks), plus the folders' own blocks.
    assert empty == 0
    assert 300_000 <= size < 300_000 + 64_000


def test_an_exclusive_lock_is_refused_while_another_build_holds_the_storage(
    tmp_path: Path,
) -> None:
    # Prepare: two builds hold the storage.
    first, second = StorageLock(tmp_path / LOCK_NAME), StorageLock(tmp_path / LOCK_NAME)
    assert first.acquire_shared(timeout=1)
    assert second.acquire_shared(timeout=1)

    # Execute
    while_shared = first.try_exclusive()
    second.release()
    third = StorageLock(tmp_path / LOCK_NAME)
    alone = third.acquire_shared(timeout=1) and third.try_exclusive()
    late = StorageLock(tmp_path / LOCK_NAME).acquire_shared(timeout=0.3, poll=0.1)

    # Assert: a build that starts while one prunes waits (here: times out).
    assert not while_shared
    assert alone
    assert not late
    first.release()
    third.release()


def test_a_prune_removes_the_oldest_builds_until_under_the_limit(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: 1.2 MB in three builds and a pulled base; the limit is 0.7 MB.
    storage = FakeStorage(tmp_path)
    storage.add("build1", 100, 300_000)
    storage.add("build2", 200, 300_000)
    storage.add("base", 50, 300_000, "r/flops/base-sklearn@sha256:1")
    storage.add("build3", 300, 300_000)
    cache = _cache(storage, events, 700_000)

    # Execute
    with cache.in_use():
        outcome = cache.prune()
    _close(cache)

    # Assert: the two oldest builds went; the newest build and the base stay.
    assert storage.left() == ["base", "build3"]
    assert outcome is not None
    assert outcome.bytes_before > 1_200_000 > 700_000 > outcome.bytes_after
    assert outcome.bytes_after == storage_bytes(storage.root)
    (event,) = events.of_type("cache_pruned")
    assert event["data"]["removed"] == ["build1", "build2"]
    assert event["data"]["bytes_after"] == outcome.bytes_after
    assert event["data"]["limit_bytes"] == 700_000
    assert event["data"]["skipped"] is None


def test_over_a_tiny_limit_everything_goes_tagged_images_last(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: a base with two tags (Buildah removes such an image only by its names).
    storage = FakeStorage(tmp_path)
    storage.add("base", 50, 300_000, "r/flops/base-sklearn:k1", "r/flops/base-sklearn@sha256:1")
    storage.add("build1", 100, 300_000)
    cache = _cache(storage, events, 1)

    # Execute
    with cache.in_use():
        outcome = cache.prune()
    _close(cache)

    # Assert
    assert storage.left() == []
    assert outcome is not None and outcome.removed == ("build1", "r/flops/base-sklearn:k1")
    assert outcome.bytes_after < 100_000


def test_under_the_limit_or_without_a_limit_nothing_is_removed_or_reported(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare
    storage = FakeStorage(tmp_path)
    storage.add("build1", 100, 300_000)
    roomy, unlimited = _cache(storage, events, 10 * MB), _cache(storage, events, 0)

    # Execute
    with roomy.in_use():
        under = roomy.prune()
    with unlimited.in_use():
        never = unlimited.prune()
    _close(roomy)
    _close(unlimited)

    # Assert
    assert under is None and never is None
    assert storage.left() == ["build1"]
    assert events.events == []


def test_no_prune_while_another_build_uses_the_storage(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: another build holds the storage.
    storage = FakeStorage(tmp_path)
    storage.add("build1", 100, 300_000)
    other = StorageLock(storage.root / LOCK_NAME)
    assert other.acquire_shared(timeout=1)
    cache = _cache(storage, events, 100_000)

    # Execute
    with cache.in_use():
        outcome = cache.prune()
    other.release()
    _close(cache)

    # Assert
    assert storage.left() == ["build1"]
    assert outcome is not None and outcome.skipped == "another build is using the cache"
    assert events.of_type("cache_pruned")[0]["data"]["removed"] == []


def test_an_image_in_use_is_passed_over_and_a_failure_is_only_a_warning(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: the oldest image is used by a container.
    storage = FakeStorage(tmp_path)
    storage.add("build1", 100, 300_000, in_use=True)
    storage.add("build2", 200, 300_000)
    cache = _cache(storage, events, 100_000)

    # Execute: one prune that cannot remove build1; then one whose listing fails.
    with cache.in_use():
        outcome = cache.prune()
    (tmp_path / "images-fail").touch()
    with cache.in_use():
        failed = cache.prune()
    _close(cache)

    # Assert
    assert storage.left() == ["build1"]
    assert outcome is not None and outcome.removed == ("build2",)
    assert outcome.bytes_after > 100_000  # still over: nothing else could go
    assert failed is None
    (warning,) = events.of_type("warning")
    assert warning["data"]["reason"] == (
        "pruning the image builder's cache failed: buildah images failed: "
        "reading images: database is locked"
    )


def test_a_failed_build_prunes_before_its_failed_event(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: a build of a repo that does not exist, over a storage over its limit.
    storage = FakeStorage(tmp_path / "storage")
    storage.add("build1", 100, 300_000)
    request = BuildRequest(
        repo_url=str(tmp_path / "no-such-repo"), commit="abc1234", flavor="sklearn",
        platforms=("linux/amd64",), registry="127.0.0.1:9", customer="c", project_id="p1",
        base_image="base", tls_verify=False, work_dir=tmp_path / "work",
    )  # fmt: skip
    cache = _cache(storage, events, 100_000)
    job = ImageBuildJob(
        request,
        reporter=cache._reporter,
        buildah=storage.buildah,
        pip_settings=PipSettings(),
        cache=cache,
    )

    # Execute
    with pytest.raises(BuildStepError):
        job.run()
    _close(cache)

    # Assert
    assert [e["type"] for e in events.events] == ["started", "cache_pruned", "failed"]
    assert events.events[2]["data"]["step"] == "clone"
    assert storage.left() == []
