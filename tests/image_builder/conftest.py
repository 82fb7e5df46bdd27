"""Local package indexes of tiny wheels, throwaway ML repos, the registry and its namespaces."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flops_core.registry_client import MANIFEST_ACCEPT
from image_builder.pip_resolver import PipSettings
from tests.flops_manager.environments.conftest import make_wheel

#: The registry the container tests push to (scripts/container-env.sh starts it).
REGISTRY = "127.0.0.1:5050"

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEP 503 index on disk: `flopstest-a` 1.0 and 2.0, `flopstest-b` 1.0 (needs a<2)."""
    root = tmp_path_factory.mktemp("simple")
    wheels = [
        ("flopstest-a", "1.0", ()),
        ("flopstest-a", "2.0", ()),
        ("flopstest-b", "1.0", ("flopstest-a<2",)),
    ]
    for name, version, requires in wheels:
        make_wheel(root / name, name, version, "", requires=requires)
    for project in root.iterdir():
        links = "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in sorted(project.iterdir()))
        (project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return root


@pytest.fixture
def offline_pip(local_index: Path) -> PipSettings:
    """pip settings that resolve from `local_index` only."""
    return PipSettings(index_url=local_index.as_uri(), timeout=120.0)


def git_repo(
    folder: Path, files: dict[str, str] | None = None, *, source: Path | None = None
) -> str:
    """Make (or update) a Git repo in `folder` from `source` and `files`; return the new commit."""
    if source is not None:
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    if not (folder / ".git").exists():
        subprocess.run(["git", "init", "--quiet", str(folder)], check=True)
    env_args = ["-c", "user.email=tests@flops.invalid", "-c", "user.name=tests"]
    subprocess.run(["git", "-C", str(folder), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(folder), *env_args, "commit", "--quiet", "-m", "test"], check=True
    )
    result = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


@pytest.fixture
def customer() -> Iterator[str]:
    """A unique namespace; its images are deleted from the registry and docker afterwards."""
    name = f"test-ib-{uuid.uuid4().hex[:8]}"
    yield name
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}} {{.ID}}"], capture_output=True, text=True
    ).stdout.splitlines()
    pulled = {line.split()[1] for line in listed if line.startswith(f"{REGISTRY}/{name}/")}
    if pulled:
        subprocess.run(["docker", "rmi", "--force", *sorted(pulled)], capture_output=True)
    catalog = httpx.get(f"http://{REGISTRY}/v2/_catalog?n=1000").json()["repositories"]
    for repository in [r for r in catalog if r.startswith(f"{name}/")]:
        tags = httpx.get(f"http://{REGISTRY}/v2/{repository}/tags/list").json().get("tags") or []
        for tag in tags:
            head = httpx.head(
                f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
                headers={"Accept": MANIFEST_ACCEPT},
            )
            digest = head.headers.get("Docker-Content-Digest")
            if digest:
                httpx.delete(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}")
