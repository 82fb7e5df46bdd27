"""docker-compose.yml: the management stack comes up healthy, answers, and holds no secrets.

The images are built once with base_images/build-images.sh (Buildah, from the debootstrap base
in the local registry) and pushed; a run whose inputs did not change skips the build, so warm
runs only start the stack. Each Compose implementation found here (docker-compose 1.29 and
Compose v2, from `docker compose` or the binary named by FLOPS_COMPOSE_V2) brings up its own
project with its own env file and free ports, and takes it down with its volumes at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
#: Where the test's images go: a namespace of the registry of scripts/container-env.sh.
IMAGE_REGISTRY = os.environ.get("FLOPS_TEST_IMAGE_REGISTRY", "127.0.0.1:5050/flopstest")
BASE_IMAGE = os.environ.get("FLOPS_TEST_BASE_IMAGE", "127.0.0.1:5050/flops/debian-python:bookworm")
IMAGES = ("manager", "mlflow", "registry", "image-builder")
LONG_RUNNING = ("manager", "mlflow", "registry")
HEALTHY_WITHIN = 240.0


def _run(
    cmd: list[str],
    *,
    timeout: float = 600,
    check: bool = True,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    return str(result.stdout)


def _works(cmd: list[str]) -> str | None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _compose_commands() -> dict[str, list[str] | str]:
    """Each Compose implementation: its command, or why it is not here."""
    found: dict[str, list[str] | str] = {}
    v1 = _works(["docker-compose", "version", "--short"])
    found["compose-v1"] = (
        ["docker-compose"] if v1 and v1.startswith("1.") else "docker-compose 1.x is not installed"
    )
    v2_binary = os.environ.get("FLOPS_COMPOSE_V2")
    if v2_binary and _works([v2_binary, "version", "--short"]):
        found["compose-v2"] = [v2_binary]
    elif _works(["docker", "compose", "version", "--short"]):
        found["compose-v2"] = ["docker", "compose"]
    else:
        found["compose-v2"] = (
            "Compose v2 is not installed (no `docker compose` plugin, FLOPS_COMPOSE_V2 unset)"
        )
    return found


COMPOSE = _compose_commands()


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Tags of the stack's images, built if their inputs changed, and pulled into Docker."""
    for tool in ("docker", "buildah", "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make container-env)")
    if _works(["docker", "info"]) is None:
        pytest.skip("dockerd is not running (make container-env)")
    started = time.monotonic()
    built = _run(
        [
            str(ROOT / "base_images" / "build-images.sh"),
            "--registry", IMAGE_REGISTRY,
            "--base-image", BASE_IMAGE,
            "--images", " ".join(IMAGES),
            "--push",
        ],
        timeout=1500,
    )  # fmt: skip
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    tags = {name: f"{IMAGE_REGISTRY}/flops/{name}:{version}" for name in IMAGES}
    for tag in tags.values():
        before = _works(["docker", "image", "inspect", "--format", "{{.Id}}", tag])
        _run(["docker", "pull", "--quiet", tag], timeout=600)
        if before and before != _works(["docker", "image", "inspect", "--format", "{{.Id}}", tag]):
            _works(["docker", "rmi", before.strip()])  # the previous build, now untagged
    print(built[built.find("build-images: summary") :])
    print(f"images ready in {time.monotonic() - started:.0f} s")
    return tags


@dataclass
class Stack:
    """One running compose project."""

    compose: list[str]
    project: str
    env_file: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        cmd = [*self.compose, "-p", self.project, "--env-file", str(self.env_file)]
        cmd += ["-f", str(COMPOSE_FILE)]
        return _run([*cmd, *args], timeout=timeout, check=check, cwd=ROOT)

    def containers(self) -> list[dict[str, object]]:
        ids = _run(["docker", "ps", "-aq", "--filter", f"label={self.project_label}"]).split()
        if not ids:
            return []
        return list(json.loads(_run(["docker", "inspect", *ids])))

    @property
    def project_label(self) -> str:
        return f"com.docker.compose.project={self.project}"

    def service_states(self) -> dict[str, str]:
        states = {}
        for c in self.containers():
            config, state = c["Config"], c["State"]
            assert isinstance(config, dict) and isinstance(state, dict)
            service = config["Labels"]["com.docker.compose.service"]
            health = state.get("Health") or {}
            states[service] = health.get("Status") or state["Status"]
        return states

    def url(self, service: str) -> str:
        port = {"manager": "MANAGER", "mlflow": "MLFLOW", "registry": "REGISTRY"}[service]
        return f"http://127.0.0.1:{self.env[f'FLOPS_{port}_PORT']}"


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _wait_healthy(stack: Stack) -> float:
    started = time.monotonic()
    states: dict[str, str] = {}
    while time.monotonic() - started < HEALTHY_WITHIN:
        states = stack.service_states()
        if all(states.get(s) == "healthy" for s in LONG_RUNNING):
            return time.monotonic() - started
        if any(states.get(s) in {"unhealthy", "exited", "dead"} for s in LONG_RUNNING):
            break
        time.sleep(1)
    logs = stack.run("logs", "--no-color", "--tail", "40", check=False)
    raise AssertionError(f"services not healthy: {states}\n{logs[-6000:]}")


@pytest.fixture(scope="module", params=sorted(COMPOSE))
def stack(
    request: pytest.FixtureRequest, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The stack of docker-compose.yml under one Compose implementation, up and healthy."""
    compose = COMPOSE[request.param]
    if isinstance(compose, str):
        pytest.skip(compose)
    project = f"flopstest{secrets.token_hex(4)}"
    workdir = tmp_path_factory.mktemp(project)
    env_file = workdir / "stack.env"
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    manager, mlflow, registry, data_server = (str(p) for p in sorted(ports))
    overrides = {
        "FLOPS_MANAGER_PORT": manager,
        "FLOPS_MLFLOW_PORT": mlflow,
        "FLOPS_REGISTRY_PORT": registry,
        "FLOPS_DATA_SERVER_PORT": data_server,
        "FLOPS_LOCAL_NODES": "1",
        "FLOPS_MANAGER_IMAGE": images["manager"],
        "FLOPS_MLFLOW_IMAGE": images["mlflow"],
        "FLOPS_BUILDER_IMAGE": images["image-builder"],
        "FLOPS_REGISTRY_IMAGE": images["registry"],
        "FLOPS_BASE_IMAGE": BASE_IMAGE,
    }
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOPS_", "COMPOSE_"))}
    _run([str(ROOT / "scripts" / "compose-env.sh"), "--output", str(env_file)],
         env={**clean_env, **overrides})  # fmt: skip
    with env_file.open("a") as f:
        f.write("FLOPS_HEALTHCHECK_INTERVAL=1s\n")
    stack = Stack(list(compose), project, env_file, _read_env(env_file))
    try:
        started = time.monotonic()
        stack.run("up", "-d", "--no-build")
        healthy_after = _wait_healthy(stack)
        print(f"{request.param}: up in {time.monotonic() - started:.0f} s "
              f"(healthy {healthy_after:.0f} s after `up` returned)")  # fmt: skip
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        label = f"label={stack.project_label}"
        leftovers = {
            "containers": _run(["docker", "ps", "-aq", "--filter", label]).split(),
            "volumes": _run(["docker", "volume", "ls", "-q", "--filter", label]).split()
            + _run(["docker", "volume", "ls", "-q", "--filter", f"name={project}"]).split(),
            "networks": _run(["docker", "network", "ls", "-q", "--filter", label]).split(),
        }
        assert not any(leftovers.values()), f"left behind by {project}: {leftovers}"


def test_every_long_running_service_is_healthy_and_the_builder_is_not_started(
    stack: Stack,
) -> None:
    # Execute
    states = stack.service_states()

    # Assert
    assert {s: states.get(s) for s in LONG_RUNNING} == dict.fromkeys(LONG_RUNNING, "healthy")
    assert "image-builder" not in states


def test_manager_answers_health_and_the_admin_token_from_the_env_file(stack: Stack) -> None:
    # Prepare
    token = stack.env["FLOPS_ADMIN_TOKEN"]
    api = f"{stack.url('manager')}/api/flops"

    # Execute
    health = httpx.get(f"{api}/health", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    authorized = httpx.get(f"{api}/projects", headers={"Authorization": f"Bearer {token}"})
    anonymous = httpx.get(f"{api}/projects")

    # Assert
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert authorized.status_code == 200, authorized.text
    assert anonymous.status_code == 401


def test_mlflow_answers_and_stores_runs(stack: Stack) -> None:
    # Prepare
    api = f"{stack.url('mlflow')}/api/2.0/mlflow"

    # Execute
    health = httpx.get(f"{stack.url('mlflow')}/health", timeout=10)
    created = httpx.post(f"{api}/experiments/create", json={"name": stack.project}, timeout=10)

    # Assert
    assert health.status_code == 200
    assert created.status_code == 200, created.text
    assert created.json()["experiment_id"]


def test_registry_answers_and_docker_pulls_what_is_pushed_to_it(stack: Stack) -> None:
    # Prepare
    registry = f"127.0.0.1:{stack.env['FLOPS_REGISTRY_PORT']}"
    source = stack.env["FLOPS_REGISTRY_IMAGE"]
    pushed = f"{registry}/{stack.project}/probe:1"

    # Execute
    answer = httpx.get(f"http://{registry}/v2/", timeout=10)
    _run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
          f"docker://{source}", f"docker://{pushed}"])  # fmt: skip
    try:
        pulled = _works(["docker", "pull", "--quiet", pushed])
    finally:
        _run(["docker", "rmi", pushed], check=False)

    # Assert
    assert answer.status_code == 200
    assert pulled is not None


def test_env_file_is_private_and_random_and_the_compose_file_holds_no_secret(
    stack: Stack,
) -> None:
    # Prepare
    token = stack.env["FLOPS_ADMIN_TOKEN"]
    compose_text = COMPOSE_FILE.read_text()
    resolved = stack.run("config")

    # Assert
    assert stat.S_IMODE(stack.env_file.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", token), "the admin token is not 256 random bits"
    assert token not in compose_text
    assert token in resolved  # the file does reach the manager
    # Every variable that looks secret is required: none has a default in the compose file.
    for name in re.findall(r"\$\{(\w+):?-[^}]*\}", compose_text):
        assert not re.search(r"TOKEN|PASSWORD|SECRET|KEY", name), f"{name} has a default"
    assert re.search(r"FLOPS_ADMIN_TOKEN: \$\{FLOPS_ADMIN_TOKEN:\?", compose_text)


def test_compose_env_never_overwrites_an_existing_env_file(tmp_path: Path) -> None:
    # Prepare
    env_file = tmp_path / "stack.env"
    script = [str(ROOT / "scripts" / "compose-env.sh"), "--output", str(env_file)]
    _run(script)
    before = env_file.read_bytes()

    # Execute
    _run(script)
    _run(script, env={**os.environ, "FLOPS_ADMIN_TOKEN": secrets.token_hex(32)})

    # Assert
    assert env_file.read_bytes() == before


def test_builder_service_runs_buildah_on_vfs(stack: Stack) -> None:
    # Prepare: what a build does, in one container as the manager runs it: pull a base, RUN in it
    has_cli = (ROOT / "image_builder" / "__main__.py").exists()
    script = (
        "echo driver=$(buildah info --format '{{.store.GraphDriverName}}') && "
        f"ctr=$(buildah from --quiet --tls-verify=false {BASE_IMAGE}) && "
        "buildah run \"$ctr\" python3 -c 'print(6 * 7)' && "
        + ("python -m image_builder --help" if has_cli else "true")
    )

    # Execute
    output = stack.run("run", "--rm", "-T", "image-builder", "sh", "-c", script)

    # Assert
    assert "driver=vfs" in output.splitlines()
    assert "42" in output.splitlines()
    if has_cli:
        assert "usage" in output.lower()
