"""Real builds that prune their Buildah storage to a 1 MB limit, and a build after the prune.

Needs Buildah and the registry on 127.0.0.1:5050 with the bootstrapped base image (`make
container-env`). The builds use a private vfs storage (as the builder container does on its
cache volume), so that pruning it touches no other build's images.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_builder.storage_prune import MB
from tests.conftest import EventReceiver
from tests.image_builder.conftest import EXAMPLES, REGISTRY, git_repo

pytestmark = [pytest.mark.container, pytest.mark.timeout(2400)]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of builds on a private vfs storage under `tmp_path`; wiped afterwards."""
    root = tmp_path / "storage"
    root.mkdir()
    conf = root / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n'
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "STORAGE_DRIVER": "vfs"}
    yield env
    subprocess.run(
        ["buildah", "--storage-driver", "vfs", "rmi", "--all", "--force"],
        env=env,
        capture_output=True,
        timeout=600,
    )
    shutil.rmtree(root, ignore_errors=True)


def _build(
    repo: Path, commit: str, customer: str, events: EventReceiver, env: dict[str, str]
) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "image_builder", "build"),
            *("--repo-url", repo.as_uri(), "--commit", commit, "--flavor", "sklearn"),
            *("--platforms", "linux/amd64", "--registry", REGISTRY),
            *("--customer", customer, "--project-id", f"p-{commit[:8]}"),
            *("--cache-max-mb", "1"),
        ],
        capture_output=True,
        text=True,
        env={**env, "FLOPS_CALLBACK_URL": events.url, "FLOPS_CALLBACK_TOKEN": "t"},
        timeout=2300,
    )
    seconds = time.monotonic() - started
    own_lines = [line for line in result.stderr.splitlines() if " flops.image_builder" in line]
    print(f"build of {commit[:8]}: {seconds:.1f} s\n" + "\n".join(own_lines[-6:]))
    assert result.returncode == 0, result.stderr[-5000:]
    return seconds


def _disk_usage(graph: Path) -> int:
    """Bytes under `graph` as `du` counts them (not with the builder's own code)."""
    result = subprocess.run(
        ["du", "-sx", "--block-size=1", str(graph)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[0])


def _images(env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        ["buildah", "--storage-driver", "vfs", "images", "--all", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_builds_prune_their_storage_to_the_limit_and_build_again(
    tmp_path: Path, customer: str, events: EventReceiver, storage: dict[str, str]
) -> None:
    # Prepare
    repo = tmp_path / "sklearn-digits"
    commit = git_repo(repo, source=EXAMPLES / "sklearn-digits")
    graph = Path(storage["CONTAINERS_STORAGE_CONF"]).parent / "graph"

    # Execute: a build on an empty storage, over the 1 MB limit once the base is pulled.
    _build(repo, commit, customer, events, storage)

    # Assert: the storage was pruned before the build reported its success.
    types = [e["type"] for e in events.events]
    assert types.index("cache_pruned") == len(types) - 2 and types[-1] == "succeeded"
    pruned = events.of_type("cache_pruned")[0]["data"]
    print(
        f"first prune: {pruned['bytes_before'] / MB:.1f} MB -> {pruned['bytes_after'] / MB:.1f} "
        f"MB in {pruned['duration_s']:.1f} s, removed {pruned['removed']}"
    )
    assert pruned["skipped"] is None
    assert pruned["limit_bytes"] == MB
    assert pruned["bytes_before"] > 100 * MB
    assert pruned["bytes_after"] <= MB
    assert pruned["removed"]
    assert _disk_usage(graph) <= MB
    assert _images(storage) == []

    # Execute: another commit builds on the pruned storage.
    (repo / "model_manager.py").write_text((repo / "model_manager.py").read_text() + "\n# 2\n")
    second = git_repo(repo)
    events.events.clear()
    _build(repo, second, customer, events, storage)

    # Assert
    rebuilt = events.wait_for("succeeded", timeout=30)["data"]
    assert set(rebuilt["images"]) == {"learner", "aggregator"}
    again = events.of_type("cache_pruned")[0]["data"]
    print(
        f"second prune: {again['bytes_before'] / MB:.1f} MB -> {again['bytes_after'] / MB:.1f} "
        f"MB in {again['duration_s']:.1f} s"
    )
    assert again["bytes_after"] <= MB
