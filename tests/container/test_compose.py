"""docker-compose.yml, brought up by the README's one command, scripts/compose-up.sh.

Two machines are simulated, each with a Compose implementation of its own (docker-compose 1.29
and Compose v2, from `docker compose` or the binary named by FLOPS_COMPOSE_V2; either one takes
both cases when the other is missing):

- `airgapped`: this machine as it is, where no image can be pulled from Docker Hub. The env file
  is the stock one scripts/compose-env.sh writes (`registry:2`, `flops/manager:<version>`, ...,
  base `python:3.11-slim`); compose-up.sh must build what it cannot pull from the bootstrapped
  Debian base in the registry of scripts/container-env.sh (127.0.0.1:5050).
- `pullable`: Docker Hub cannot be reached from here, so "images can be pulled" is simulated by
  a registry that can: the stack's images are published to 127.0.0.1:5050/flopstest with
  base_images/build-images.sh --push (as a release would publish them), the env file names them,
  and their local copies are removed first, so compose-up.sh must pull them and build nothing.

The images compose-up.sh builds are named localhost/flopstest/... (FLOPS_BUILD_PREFIX), apart
from a real install's; they and the published ones are kept between runs, so warm runs build
nothing. Each stack is a project of its own with its own env file and free ports, taken down
with its volumes at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_UP = ROOT / "scripts" / "compose-up.sh"
COMPOSE_ENV = ROOT / "scripts" / "compose-env.sh"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
#: Where the "pullable" case's images are published: a namespace of the local registry.
PUBLISHED = os.environ.get("FLOPS_TEST_IMAGE_REGISTRY", "127.0.0.1:5050/flopstest")
BASE_IMAGE = os.environ.get("FLOPS_TEST_BASE_IMAGE", "127.0.0.1:5050/flops/debian-python:bookworm")
#: Where compose-up.sh names the images it builds in these tests.
BUILD_PREFIX = "localhost/flopstest"
IMAGES = {  # build-images.sh name: the env file's variable
    "manager": "FLOPS_MANAGER_IMAGE",
    "mlflow": "FLOPS_MLFLOW_IMAGE",
    "registry": "FLOPS_REGISTRY_IMAGE",
    "image-builder": "FLOPS_BUILDER_IMAGE",
}
LONG_RUNNING = ("manager", "mlflow", "registry")
#: A second compose-up.sh with nothing changed (build-images.sh checks the four images).
WARM_WITHIN = 60.0


def _run(
    cmd: list[str],
    *,
    timeout: float = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-4000:]}"
        )
    return result


def _works(cmd: list[str]) -> str | None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _compose_commands() -> dict[str, str]:
    """The Compose implementations here, as FLOPS_COMPOSE values."""
    found = {}
    v1 = _works(["docker-compose", "version", "--short"])
    if v1 and v1.startswith("1."):
        found["compose-v1"] = "docker-compose"
    v2_binary = os.environ.get("FLOPS_COMPOSE_V2")
    if v2_binary and _works([v2_binary, "version", "--short"]):
        found["compose-v2"] = v2_binary
    elif _works(["docker", "compose", "version", "--short"]):
        found["compose-v2"] = "docker compose"
    return found


COMPOSE = _compose_commands()
CASES = {"airgapped": ("compose-v2", "compose-v1"), "pullable": ("compose-v1", "compose-v2")}


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without FLOPS_ and COMPOSE_ variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOPS_", "COMPOSE_"))}
    return {**env, **extra}


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


@pytest.fixture(scope="session")
def container_host() -> None:
    """Skip unless dockerd, Buildah, Skopeo, Compose and the bootstrapped base are here."""
    for tool in ("docker", "buildah", "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make container-env)")
    if _works(["docker", "info"]) is None:
        pytest.skip("dockerd is not running (make container-env)")
    if not COMPOSE:
        pytest.skip("neither docker-compose 1.x nor Compose v2 is installed")
    base = ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{BASE_IMAGE}"]
    if _works(base) is None:
        pytest.skip(f"{BASE_IMAGE} is not in its registry (make container-env)")


@pytest.fixture(scope="session")
def docker_hub_reachable(container_host: None) -> bool:
    return _works(["skopeo", "inspect", "--raw", "docker://registry:2"]) is not None


@pytest.fixture(scope="session")
def published(container_host: None) -> dict[str, str]:
    """The stack's images published to a registry Docker can pull from (skipped if up to date)."""
    _run(
        [
            str(ROOT / "base_images" / "build-images.sh"),
            "--registry", PUBLISHED,
            "--base-image", BASE_IMAGE,
            "--images", " ".join(IMAGES),
            "--push",
        ],
        timeout=1500,
    )  # fmt: skip
    return {name: f"{PUBLISHED}/flops/{name}:{VERSION}" for name in IMAGES}


@dataclass
class Stack:
    """One compose project brought up by compose-up.sh."""

    case: str
    compose: str
    project: str
    env_file: Path
    run_env: dict[str, str]
    settings: dict[str, str]
    output: str = ""
    seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def up(self) -> subprocess.CompletedProcess[str]:
        """Run the README's command: scripts/compose-up.sh."""
        cmd = [str(COMPOSE_UP), "--env-file", str(self.env_file), "-p", self.project]
        return _run(cmd, env=self.run_env, timeout=1700)

    def compose_cmd(self, *args: str) -> list[str]:
        return [*self.compose.split(), "-p", self.project, "--env-file", str(self.env_file),
                "-f", str(COMPOSE_FILE), *args]  # fmt: skip

    def container_ids(self) -> dict[str, str]:
        """Service name -> container id of this project's containers."""
        ids = _run(["docker", "ps", "-aq", "--filter", f"label={self.project_label}"]).stdout
        if not ids.split():
            return {}
        fmt = '{{index .Config.Labels "com.docker.compose.service"}} {{.Id}}'
        lines = _run(["docker", "inspect", "--format", fmt, *ids.split()]).stdout.splitlines()
        return dict(line.split() for line in lines)

    def service_states(self) -> dict[str, str]:
        fmt = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"
        return {
            service: _run(["docker", "inspect", "--format", fmt, cid]).stdout.strip()
            for service, cid in self.container_ids().items()
        }

    @property
    def project_label(self) -> str:
        return f"com.docker.compose.project={self.project}"

    def url(self, service: str) -> str:
        port = {"manager": "MANAGER", "mlflow": "MLFLOW", "registry": "REGISTRY"}[service]
        return f"http://127.0.0.1:{self.env[f'FLOPS_{port}_PORT']}"


def _new_stack(case: str, compose: str, workdir: Path) -> Stack:
    project = f"flopstest{secrets.token_hex(4)}"
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    manager, mlflow, registry, data_server = (str(p) for p in sorted(ports))
    stack_env = {
        "FLOPS_MANAGER_PORT": manager,
        "FLOPS_MLFLOW_PORT": mlflow,
        "FLOPS_REGISTRY_PORT": registry,
        "FLOPS_DATA_SERVER_PORT": data_server,
        "FLOPS_LOCAL_NODES": "1",
    }
    run_env = _clean_env(
        FLOPS_COMPOSE=compose, FLOPS_BUILD_PREFIX=BUILD_PREFIX, FLOPS_HEALTHCHECK_INTERVAL="1s"
    )
    if case == "airgapped":
        run_env.update(stack_env)  # compose-up.sh writes the env file: with these ports
    return Stack(case, compose, project, workdir / "stack.env", run_env, stack_env)


def _take_down(stack: Stack) -> None:
    _run(stack.compose_cmd("down", "-v", "--remove-orphans", "--timeout", "10"),
         env=stack.run_env, check=False)  # fmt: skip
    label = f"label={stack.project_label}"
    leftovers = {
        "containers": _run(["docker", "ps", "-aq", "--filter", label]).stdout.split(),
        "volumes": _run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split(),
        "networks": _run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split(),
    }
    assert not any(leftovers.values()), f"left behind by {stack.project}: {leftovers}"


@pytest.fixture(scope="module", params=sorted(CASES))
def stack(
    request: pytest.FixtureRequest,
    container_host: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The stack of docker-compose.yml as scripts/compose-up.sh brings it up, healthy."""
    case = request.param
    compose = next((COMPOSE[c] for c in CASES[case] if c in COMPOSE), "")
    stack = _new_stack(case, compose, tmp_path_factory.mktemp(case))
    if case == "pullable":
        # An env file naming the published images, none of them in the Docker daemon yet.
        images: dict[str, str] = request.getfixturevalue("published")
        variables = {IMAGES[name]: tag for name, tag in images.items()}
        _run([str(COMPOSE_ENV), "--output", str(stack.env_file)],
             env=_clean_env(**stack.settings, **variables))  # fmt: skip
        for tag in images.values():
            _run(["docker", "rmi", tag], check=False)
    try:
        started = time.monotonic()
        result = stack.up()
        stack.seconds = time.monotonic() - started
        stack.output = result.stdout + result.stderr
        stack.env = _read_env(stack.env_file)
        print(f"{case} ({compose}): healthy in {stack.seconds:.0f} s\n{result.stdout}")
        yield stack
    finally:
        _take_down(stack)


def test_every_long_running_service_is_healthy_and_the_builder_is_not_started(
    stack: Stack,
) -> None:
    # Execute
    states = stack.service_states()

    # Assert
    assert {s: states.get(s) for s in LONG_RUNNING} == dict.fromkeys(LONG_RUNNING, "healthy")
    assert "image-builder" not in states
    assert "compose-up: healthy in" in stack.output


def test_airgapped_builds_what_it_cannot_pull_from_the_bootstrapped_base(
    stack: Stack, docker_hub_reachable: bool
) -> None:
    if stack.case != "airgapped":
        pytest.skip("the airgapped stack's test")
    if docker_hub_reachable:
        pytest.skip("Docker Hub can be reached from here: this machine is not air-gapped")

    # Assert: the stock names could not be pulled, so the env file now names what was built
    built = {IMAGES[name]: f"{BUILD_PREFIX}/flops/{name}:{VERSION}" for name in IMAGES}
    assert {name: stack.env[name] for name in built} == built
    assert stack.env["FLOPS_BASE_IMAGE"] == BASE_IMAGE
    assert "registry: registry:2 cannot be pulled" in stack.output
    assert f"base: python:3.11-slim cannot be pulled; using {BASE_IMAGE}" in stack.output
    for tag in built.values():
        assert _works(["docker", "image", "inspect", tag]) is not None, tag


def test_pullable_images_are_pulled_and_nothing_is_built(stack: Stack) -> None:
    if stack.case != "pullable":
        pytest.skip("the pullable stack's test")

    # Assert
    published = {IMAGES[name]: f"{PUBLISHED}/flops/{name}:{VERSION}" for name in IMAGES}
    assert {name: stack.env[name] for name in published} == published
    for tag in published.values():
        assert f"pulled {tag}" in stack.output
    assert "building" not in stack.output
    assert stack.env["FLOPS_BASE_IMAGE"] == "python:3.11-slim"  # nothing was built from it


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
    pushed = f"{registry}/{stack.project}/probe:1"
    _run(["docker", "tag", stack.env["FLOPS_REGISTRY_IMAGE"], pushed])

    # Execute
    answer = httpx.get(f"http://{registry}/v2/", timeout=10)
    try:
        _run(["docker", "push", "--quiet", pushed])
        _run(["docker", "rmi", pushed])
        pulled = _works(["docker", "pull", "--quiet", pushed])
    finally:
        _run(["docker", "rmi", pushed], check=False)

    # Assert
    assert answer.status_code == 200
    assert pulled is not None


def test_env_file_is_private_and_random_and_no_secret_is_shown(stack: Stack) -> None:
    # Prepare
    token = stack.env["FLOPS_ADMIN_TOKEN"]
    compose_text = COMPOSE_FILE.read_text()
    resolved = _run(stack.compose_cmd("config"), env=stack.run_env).stdout

    # Assert
    assert stat.S_IMODE(stack.env_file.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", token), "the admin token is not 256 random bits"
    assert token not in stack.output
    assert token not in compose_text
    assert token in resolved  # the file does reach the manager
    # Every variable that looks secret is required: none has a default in the compose file.
    for name in re.findall(r"\$\{(\w+):?-[^}]*\}", compose_text):
        assert not re.search(r"TOKEN|PASSWORD|SECRET|KEY", name), f"{name} has a default"
    assert re.search(r"FLOPS_ADMIN_TOKEN: \$\{FLOPS_ADMIN_TOKEN:\?", compose_text)


def test_builder_service_runs_buildah_on_vfs(stack: Stack) -> None:
    # Prepare: what a build does, in one container as the manager runs it: pull a base, RUN in it
    script = (
        "echo driver=$(buildah info --format '{{.store.GraphDriverName}}') && "
        f"ctr=$(buildah from --quiet --tls-verify=false {BASE_IMAGE}) && "
        "buildah run \"$ctr\" python3 -c 'print(6 * 7)' && "
        "python -m image_builder --help"
    )

    # Execute
    output = _run(stack.compose_cmd("run", "--rm", "-T", "image-builder", "sh", "-c", script),
                  env=stack.run_env).stdout  # fmt: skip

    # Assert
    assert "driver=vfs" in output.splitlines()
    assert "42" in output.splitlines()
    assert "usage" in output.lower()


def test_a_second_run_with_nothing_changed_is_quick_and_recreates_nothing(stack: Stack) -> None:
    # Prepare
    before = stack.container_ids()

    # Execute
    started = time.monotonic()
    result = stack.up()
    seconds = time.monotonic() - started
    print(f"{stack.case}: second compose-up.sh in {seconds:.1f} s\n{result.stdout}")

    # Assert
    assert seconds < WARM_WITHIN, result.stdout
    assert stack.container_ids() == before
    # images built here are checked against the sources, and not built again
    checked = re.findall(r"^compose-up: +\S+/flops/\S+ +(\w+) ", result.stdout, re.MULTILINE)
    assert set(checked) <= {"skipped"}, result.stdout
    assert len(checked) == (4 if stack.case == "airgapped" else 0), result.stdout
    assert _read_env(stack.env_file) == stack.env


def test_compose_env_never_overwrites_an_existing_env_file(tmp_path: Path) -> None:
    # Prepare
    env_file = tmp_path / "stack.env"
    script = [str(COMPOSE_ENV), "--output", str(env_file)]
    _run(script)
    before = env_file.read_bytes()

    # Execute
    _run(script)
    _run(script, env={**os.environ, "FLOPS_ADMIN_TOKEN": secrets.token_hex(32)})

    # Assert
    assert env_file.read_bytes() == before


def test_plain_compose_up_with_the_stock_env_file_stops_at_docker_hub(
    container_host: None, docker_hub_reachable: bool, tmp_path: Path
) -> None:
    """What the README said before compose-up.sh, and why it is not the documented command."""
    if docker_hub_reachable:
        pytest.skip("Docker Hub can be reached from here")
    # Prepare
    env_file = tmp_path / "stock.env"
    _run([str(COMPOSE_ENV), "--output", str(env_file)], env=_clean_env())
    compose = next(iter(COMPOSE.values()))
    project = f"flopstest{secrets.token_hex(4)}"
    cmd = [*compose.split(), "-p", project, "--env-file", str(env_file), "-f", str(COMPOSE_FILE)]

    # Execute: `up --no-start` pulls as `up -d` does, and starts nothing
    try:
        result = _run([*cmd, "up", "--no-start"], check=False, env=_clean_env())
    finally:
        _run([*cmd, "down", "-v"], check=False, env=_clean_env())

    # Assert
    assert result.returncode != 0
    assert "registry-1.docker.io" in result.stdout + result.stderr


def test_compose_up_says_what_to_do_when_there_is_nothing_to_build_from(
    container_host: None, docker_hub_reachable: bool, tmp_path: Path
) -> None:
    if docker_hub_reachable:
        pytest.skip("Docker Hub can be reached from here")
    # Prepare: the stock env file, and no registry to find or bootstrap the Debian base in
    env_file = tmp_path / "stock.env"
    env = _clean_env(FLOPS_BOOTSTRAP_REGISTRY=f"127.0.0.1:{free_port()}")

    # Execute
    result = _run([str(COMPOSE_UP), "--env-file", str(env_file), "-p", "flopstestnobase"],
                  check=False, env=env)  # fmt: skip

    # Assert
    assert result.returncode == 1
    assert "nothing to build from: no registry on 127.0.0.1:" in result.stderr
    assert "run scripts/container-env.sh" in result.stderr
    assert (
        _run(
            ["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=flopstestnobase"]
        ).stdout
        == ""
    )
