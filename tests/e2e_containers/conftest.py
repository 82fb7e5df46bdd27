"""Fixtures of the container tests: a git server over HTTP, the builder image, a docker manager."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from flops_manager.core.config import flops_version
from tests.conftest import free_port
from tests.flops_manager.api.manager_process import ManagerProcess

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5050"
BUILD_CACHE = "flops-test-build-cache"
"""The builders' layer cache of these tests, removed at the end of the session (vfs: GBs)."""
_GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def commit_all(repo: Path, message: str) -> None:
    """Commit everything in the working copy `repo`."""
    subprocess.run([*_GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*_GIT, "commit", "-q", "-m", message], cwd=repo, check=True)


class GitServer:
    """Bare repos served over git's smart HTTP protocol (`git http-backend`), like a Git host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        handler = functools.partial(_GitHandler, str(root / "served"))
        (root / "served").mkdir(parents=True, exist_ok=True)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        """The clone URL of repo `name`."""
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def publish(self, name: str, source: Path) -> Path:
        """Copy `source` to a working copy, commit it, serve it; return the working copy."""
        work = self.root / "work" / name
        shutil.copytree(source, work, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([*_GIT, "init", "-q", "-b", "main"], cwd=work, check=True)
        commit_all(work, "initial")
        self.refresh(name)
        return work

    def refresh(self, name: str) -> None:
        """Serve the working copy's current commits."""
        work = self.root / "work" / name
        bare = self.root / "served" / f"{name}.git"
        shutil.rmtree(bare, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _GitHandler(http.server.BaseHTTPRequestHandler):
    """Runs `git http-backend` as a CGI program for each request."""

    def __init__(self, project_root: str, *args: Any, **kwargs: Any) -> None:
        self.project_root = project_root
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": self.project_root,
            "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command, "PATH_INFO": path,
            "QUERY_STRING": query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }  # fmt: skip
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    server = GitServer(tmp_path_factory.mktemp("git"))
    yield server
    server.close()


#: The label the docker backend puts on every container it starts.
MANAGED_BY_LABEL = "io.flops.managed-by"


@pytest.fixture(scope="session", autouse=True)
def _remove_service_containers() -> Iterator[None]:
    """Remove the FLOps containers these tests' managers started, at the end of the session.

    The docker backend keeps an ended service's container (renamed, stopped) for its logs
    until the project is deleted or a retention time passes; the tests delete few projects,
    so without this every run left about 30 exited containers behind. Containers that
    existed before the session are left alone.
    """
    client = docker.from_env()
    before = {c.id for c in client.containers.list(all=True, filters={"label": MANAGED_BY_LABEL})}
    yield
    try:
        for container in client.containers.list(all=True, filters={"label": MANAGED_BY_LABEL}):
            if container.id not in before:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_build_cache() -> Iterator[None]:
    yield
    client = docker.from_env()
    try:
        client.volumes.get(BUILD_CACHE).remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:  # still in use by a builder that outlived its test
        print(f"could not remove the volume {BUILD_CACHE}: {e}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def builder_image() -> str:
    """The image builder's image in the registry, built from this tree when missing."""
    image = f"{REGISTRY}/flops/image-builder:{flops_version()}"
    subprocess.run(
        ["bash", str(ROOT / "base_images" / "build-images.sh"), "--registry", REGISTRY,
         "--base-image", f"{REGISTRY}/flops/debian-python:bookworm",
         "--images", "image-builder", "--push"],
        check=True, timeout=1800,
    )  # fmt: skip
    return image


def registry_layers(name_and_tag: str) -> dict[str, list[str]]:
    """Layer digests of each platform (`amd64`, `arm64`) of `<REGISTRY>/<name>:<tag>`."""
    name, tag = name_and_tag.rsplit(":", 1)
    base = f"http://{REGISTRY}/v2/{name}/manifests"
    headers = {"Accept": _MANIFEST_TYPES}
    index = httpx.get(f"{base}/{tag}", headers=headers, timeout=10).raise_for_status().json()
    layers: dict[str, list[str]] = {}
    for entry in index.get("manifests", []):
        manifest = httpx.get(f"{base}/{entry['digest']}", headers=headers, timeout=10).json()
        layers[entry["platform"]["architecture"]] = [x["digest"] for x in manifest["layers"]]
    return layers


class DockerManager(ManagerProcess):
    """A real `python -m flops_manager` with the docker backend, on free ports.

    `expect_healthy=False` waits only for its tracking server (for a Docker daemon that is
    meant to be unreachable).
    """

    def __init__(
        self, workdir: Path, *, builder_image: str, registry: str = REGISTRY,
        docker_host: str | None = None, expect_healthy: bool = True,
    ) -> None:  # fmt: skip
        settings = {
            "FLOPS_ORCHESTRATOR": "docker", "FLOPS_REGISTRY": registry,
            "FLOPS_BUILDER_IMAGE": builder_image,
            "FLOPS_ALLOWED_REPO_SCHEMES": '["http", "https"]',
            "FLOPS_BUILDER_CACHE_VOLUME": BUILD_CACHE,
            "FLOPS_CLUSTERS": "edgeA,edgeB",  # for hierarchical projects
        }  # fmt: skip
        if docker_host:
            settings["FLOPS_DOCKER_HOST"] = docker_host
        super().__init__(workdir, **settings)
        self.env.pop("FLOPS_ALLOW_LOCAL_REPOS")  # repos come from the tests' git server
        self.expect_healthy = expect_healthy

    def ready(self, health: httpx.Response) -> bool:
        tracking = health.json().get("components", {}).get("tracking", "")
        return health.status_code == 200 or (not self.expect_healthy and tracking == "ok")

    def stop(self) -> None:
        super().stop()
        client = docker.from_env()
        try:
            for container in client.containers.list(
                all=True, filters={"label": "io.flops.project"}
            ):
                if container.status == "running" and self._ours(container):
                    container.kill()
        finally:
            client.close()

    def _ours(self, container: Any) -> bool:
        env = container.attrs.get("Config", {}).get("Env") or []
        return any(self.url in item for item in env)
