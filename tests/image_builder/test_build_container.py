"""A real build of examples/sklearn-digits for amd64 and arm64, then a rebuild after a change.

Needs dockerd, Buildah, qemu's arm64 binfmt and the registry on 127.0.0.1:5050 with the
bootstrapped base image (`make container-env`). The first run on a machine also builds
the sklearn flavour base (minutes); later runs find it in the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flops_core.flops_tree import locate_flops_tree
from flops_core.registry_client import MANIFEST_ACCEPT, RegistryClient, split_ref
from image_builder import existing_images, image_refs
from tests.conftest import EventReceiver
from tests.image_builder.conftest import EXAMPLES, REGISTRY, git_repo

pytestmark = [pytest.mark.container, pytest.mark.timeout(2400)]

PLATFORMS = ("linux/amd64", "linux/arm64")


def _build(repo: Path, commit: str, customer: str, events: EventReceiver, work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FLOPS_CALLBACK_URL": events.url, "FLOPS_CALLBACK_TOKEN": "t"}
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "image_builder", "build"),
            *("--repo-url", repo.as_uri(), "--commit", commit, "--flavor", "sklearn"),
            *("--platforms", ",".join(PLATFORMS), "--registry", REGISTRY),
            *("--customer", customer, "--project-id", f"p-{commit[:8]}"),
            *("--work-dir", str(work), "--keep-work-dir"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=2300,
    )
    seconds = time.monotonic() - started
    own_lines = [line for line in result.stderr.splitlines() if " INFO flops." in line]
    print(f"build of {commit[:8]}: {seconds:.1f} s\n" + "\n".join(own_lines))
    assert result.returncode == 0, result.stderr[-5000:]
    return seconds


def _layers(ref: str, platform: str) -> list[str]:
    _, repository, reference = split_ref(ref)
    with RegistryClient(REGISTRY, tls_verify=False) as client:
        info = client.manifest(repository, reference)
        assert info is not None
        digest = info.platform_digest(platform)
    response = httpx.get(
        f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}
    )
    response.raise_for_status()
    return [layer["digest"] for layer in response.json()["layers"]]


def _platform_ref(ref: str, platform: str) -> str:
    """`<name>@<digest of the platform's image manifest>` for the list `ref`."""
    _, repository, reference = split_ref(ref)
    with RegistryClient(REGISTRY, tls_verify=False) as client:
        info = client.manifest(repository, reference)
    assert info is not None
    return f"{REGISTRY}/{repository}@{info.platform_digest(platform)}"


def _docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_build_run_and_rebuild_sklearn_digits(
    tmp_path: Path, customer: str, events: EventReceiver
) -> None:
    # Prepare: the example, plus one small package the flavour base lacks, so that the
    # image has a dependency layer (pip install, emulated for arm64).
    repo = tmp_path / "sklearn-digits"
    requirements = (EXAMPLES / "sklearn-digits" / "requirements.txt").read_text()
    extra = {"requirements.txt": requirements + "iniconfig==2.1.0\n"}
    commit = git_repo(repo, extra, source=EXAMPLES / "sklearn-digits")

    # Execute: the first build (cold or warm flavour base).
    first_seconds = _build(repo, commit, customer, events, tmp_path / "work1")

    # Assert: both images in the registry for both platforms, labelled.
    succeeded = events.wait_for("succeeded", timeout=30)["data"]
    refs = image_refs(REGISTRY, customer, repo.as_uri(), commit)
    found = existing_images(REGISTRY, refs, PLATFORMS, False)
    assert found == succeeded["images"]
    assert succeeded["platforms"] == list(PLATFORMS)
    resolve = next(e for e in events.of_type("step_completed") if e["data"]["step"] == "resolve")
    assert resolve["data"]["packages"] == ["iniconfig==2.1.0"]
    assert list(succeeded["timings"]) == [
        "clone",
        "check",
        "resolve",
        "base",
        "render",
        "build",
        "push",
    ]
    print("first build timings:", json.dumps(succeeded["timings"]))
    expected_labels = {
        "org.opencontainers.image.source": repo.as_uri(),
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.version": locate_flops_tree().version,
        "io.flops.flavor": "sklearn",
    }
    with RegistryClient(REGISTRY, tls_verify=False) as client:
        for ref in refs.values():
            _, repository, tag = split_ref(ref)
            for platform in PLATFORMS:
                labels = client.image_labels(repository, tag, platform)
                assert expected_labels.items() <= labels.items()

    # Assert: the images run, natively and emulated. Each platform's image is run by its own
    # digest: Docker 20.10 cannot hold two platforms of one `name@digest` at once.
    amd64, arm64 = (_platform_ref(found["learner"], platform) for platform in PLATFORMS)
    assert (
        _docker(
            *("run", "--rm", amd64, "python", "-c"),
            "import os, flops_learner, model_manager; print(os.getcwd())",
        )
        == "/app"
    )
    assert (
        _docker(
            *("run", "--rm", "--platform", "linux/arm64", arm64, "python", "-c"),
            "import platform, flops_learner, model_manager, iniconfig; print(platform.machine())",
        )
        == "aarch64"
    )

    # Execute: a new commit that changes only model_manager.py.
    model_manager = (repo / "model_manager.py").read_text()
    second = git_repo(repo, {"model_manager.py": model_manager + "\n# tuned\n"})
    events.events.clear()
    rebuild_seconds = _build(repo, second, customer, events, tmp_path / "work2")

    # Assert: only the user-code layer differs (the dependency and runtime layers are the
    # same blobs), and the build reused the cached steps.
    rebuilt = events.wait_for("succeeded", timeout=30)["data"]
    print(f"first build {first_seconds:.1f} s, rebuild {rebuild_seconds:.1f} s")
    print("rebuild timings:", json.dumps(rebuilt["timings"]))
    build_step = next(e for e in events.of_type("step_completed") if e["data"]["step"] == "build")
    # Per platform: the learner's 5 steps up to WORKDIR and the aggregator's 7 up to LABEL.
    assert build_step["data"]["cached_steps"] >= 2 * (5 + 7)
    base_step = next(e for e in events.of_type("step_completed") if e["data"]["step"] == "base")
    assert base_step["data"]["built"] is False
    new_refs = image_refs(REGISTRY, customer, repo.as_uri(), second)
    for role in ("learner", "aggregator"):
        for platform in PLATFORMS:
            before, after = _layers(refs[role], platform), _layers(new_refs[role], platform)
            assert len(before) == len(after)
            assert before[:-1] == after[:-1]
            assert before[-1] != after[-1]
