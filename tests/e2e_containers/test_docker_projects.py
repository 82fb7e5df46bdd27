"""Projects through the manager's API on the `docker` backend: images built, containers trained.

Needs what `scripts/container-env.sh` sets up (dockerd, buildah, the registry on 127.0.0.1:5050,
qemu for arm64, the bootstrapped base) and builds the image builder with
`base_images/build-images.sh` once (reused while its inputs do not change).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import mlflow.pyfunc
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits

from flops_core.registry_client import RegistryClient, split_ref
from tests.conftest import free_port
from tests.e2e_containers.conftest import (
    REGISTRY,
    DockerManager,
    GitServer,
    commit_all,
    registry_layers,
)
from tests.flops_manager.api.manager_process import FINAL

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]


def _body(repo_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "supported_platforms": ["linux/amd64", "linux/arm64"],
        "learner_platforms": ["linux/amd64", "linux/arm64", "linux/amd64"],
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": 2, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3, "connect_timeout_s": 600,
            "round_timeout_s": 900,
        },
        "resource_constraints": {"memory": 1024, "vcpus": 1},
        **extra,
    }  # fmt: skip


def _project_containers(project_id: str, running_only: bool = True) -> list[Any]:
    client = docker.from_env()
    try:
        return list(
            client.containers.list(
                all=not running_only, filters={"label": f"io.flops.project={project_id}"}
            )
        )
    finally:
        client.close()


def _events(manager: DockerManager, project_id: str) -> list[dict[str, Any]]:
    return list(manager.api("GET", f"/projects/{project_id}/events").json())


@pytest.fixture(scope="module")
def manager(
    tmp_path_factory: pytest.TempPathFactory, builder_image: str
) -> Iterator[DockerManager]:
    manager = DockerManager(tmp_path_factory.mktemp("manager"), builder_image=builder_image)
    manager.start()
    response = manager.api(
        "POST", "/mocks",
        json={"customerID": "Admin", "mock_data_configuration": {
            "dataset_name": "digits", "number_of_partitions": 3, "data_tag": "digits"}},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def digits_repo(git_server: GitServer) -> Path:
    """A working copy of examples/sklearn-digits, published by the git server."""
    return git_server.publish("sklearn-digits", ROOT / "examples" / "sklearn-digits")


def test_a_project_builds_images_and_trains_in_containers_one_of_them_arm64(
    manager: DockerManager, git_server: GitServer, digits_repo: Path
) -> None:
    # Execute
    created = manager.api("POST", "/projects", json=_body(git_server.url("sklearn-digits")))

    # Assert: built for both platforms, trained with an emulated arm64 learner, all gone after
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    project = manager.wait_state(project_id, FINAL, timeout=3000)
    assert project["state"] == "completed", project["message"]
    events = _events(manager, project_id)
    types = [e["type"] for e in events]
    assert "images_built" in types and "images_reused" not in types
    built = next(e for e in events if e["type"] == "images_built")["data"]["images"]
    assert built["learner"].startswith(f"{REGISTRY}/admin/sklearn-digits/learner")
    assert "@sha256:" in built["learner"]
    training = project["result"]["training"]
    client = MlflowClient(manager.tracking_url)
    run = client.get_run(training["mlflow_run_id"])
    assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 2
    assert training["metrics"]["accuracy"] > 0.5
    containers = _project_containers(project_id, running_only=False)
    learners = [c for c in containers if c.labels.get("io.flops.role") == "learner"]
    architectures = sorted(c.image.attrs["Architecture"] for c in learners)
    assert architectures == ["amd64", "amd64", "arm64"]
    assert all(c.attrs["State"]["ExitCode"] == 0 for c in learners)
    assert _project_containers(project_id) == []


def test_the_same_commit_reuses_its_images_and_a_model_change_rebuilds_only_the_code(
    manager: DockerManager, git_server: GitServer, digits_repo: Path
) -> None:
    # Prepare: the first test built this commit (or this builds it now); learners run natively
    url = git_server.url("sklearn-digits")

    def body() -> dict[str, Any]:
        return {**_body(url), "learner_platforms": None}

    first = manager.api("POST", "/projects", json=body()).json()["id"]
    assert manager.wait_state(first, FINAL, timeout=3000)["state"] == "completed"

    # Execute: the same commit again, then a commit that only touches model_manager.py
    again = manager.api("POST", "/projects", json=body()).json()["id"]
    again_state = manager.wait_state(again, FINAL, timeout=900)
    model = digits_repo / "model_manager.py"
    model.write_text(model.read_text() + "\n# tuned nothing, changed the code layer\n")
    commit_all(digits_repo, "touch model_manager.py")
    git_server.refresh("sklearn-digits")
    changed = manager.api("POST", "/projects", json=body()).json()["id"]
    changed_state = manager.wait_state(changed, FINAL, timeout=3000)

    # Assert
    assert again_state["state"] == "completed", again_state["message"]
    assert "images_reused" in [e["type"] for e in _events(manager, again)]
    assert not [s for s in again_state["services"] if s["role"] == "builder"]
    assert changed_state["state"] == "completed", changed_state["message"]
    old = registry_layers(f"admin/sklearn-digits/learner:{again_state['commit']}")
    new = registry_layers(f"admin/sklearn-digits/learner:{changed_state['commit']}")
    for platform in ("amd64", "arm64"):
        assert len(old[platform]) == len(new[platform])
        differing = [
            i for i, (a, b) in enumerate(zip(old[platform], new[platform], strict=True)) if a != b
        ]
        assert differing and min(differing) >= len(old[platform]) - 2, (platform, differing)


def test_a_hierarchical_project_trains_in_containers_per_configured_cluster(
    manager: DockerManager, git_server: GitServer, digits_repo: Path
) -> None:
    # Prepare: two clusters configured on the manager (FLOPS_CLUSTERS), four amd64 learners
    body = _body(git_server.url("sklearn-digits")) | {"learner_platforms": None}
    body["training_configuration"] |= {
        "mode": "hierarchical", "learners": 4, "training_cycles": 2, "training_rounds": 1,
        "min_available_clients": 2, "min_fit_clients": 2, "min_evaluate_clients": 2,
    }  # fmt: skip

    # Execute
    project_id = manager.api("POST", "/projects", json=body).json()["id"]
    project = manager.wait_state(project_id, FINAL, timeout=3000)

    # Assert: a root and two cluster aggregators as containers, cluster runs under the root
    assert project["state"] == "completed", project["message"]
    assert project["result"]["clusters"] == {"edgeA": 2, "edgeB": 2}
    containers = _project_containers(project_id, running_only=False)
    roles = sorted(c.labels.get("io.flops.role") for c in containers)
    assert roles.count("aggregator") == 3 and roles.count("learner") == 4
    client = MlflowClient(manager.tracking_url)
    root = client.get_run(project["result"]["training"]["mlflow_run_id"])
    assert len(client.get_metric_history(root.info.run_id, "accuracy")) == 2
    children = client.search_runs(
        [root.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{root.info.run_id}'"
    )
    assert sorted(r.data.tags["flops.cluster"] for r in children) == ["edgeA", "edgeB"]
    assert _project_containers(project_id) == []


def test_the_trained_model_becomes_an_inference_image_for_both_platforms_and_answers(
    manager: DockerManager, git_server: GitServer, digits_repo: Path
) -> None:
    # Prepare: amd64 learners; images and the inference image for amd64 and arm64
    body = _body(git_server.url("sklearn-digits")) | {
        "learner_platforms": None,
        "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"],
    }

    # Execute
    project_id = manager.api("POST", "/projects", json=body).json()["id"]
    project = manager.wait_state(project_id, FINAL, timeout=3000)

    # Assert: the image is in the registry for both platforms, with the model's labels
    assert project["state"] == "completed", project["message"]
    steps = project["result"]["post_training"]
    image = steps["build_image_for_trained_model"]["image"]
    version = project["result"]["training"]["model"]["version"]
    assert image.startswith(f"{REGISTRY}/admin/{project_id}/inference:{version}@sha256:")
    tag = image.split("@")[0].split("/", 1)[1]
    assert set(registry_layers(tag)) == {"amd64", "arm64"}
    # It runs as the project's inference service and answers like the registered model
    url = project["result"]["inference_url"]
    digits = load_digits()
    inputs = digits.data[-200:].astype(float)
    served = httpx.post(f"{url}/invocations", json={"inputs": inputs.tolist()}, timeout=60)
    assert served.status_code == 200, served.text
    client = MlflowClient(manager.tracking_url)
    mlflow.set_tracking_uri(manager.tracking_url)
    model = mlflow.pyfunc.load_model(steps["build_image_for_trained_model"]["model_uri"])
    assert served.json()["predictions"] == np.asarray(model.predict(inputs)).tolist()
    _, repository, reference = split_ref(image.split("@")[0])
    with RegistryClient(REGISTRY, tls_verify=False) as registry:
        labels = registry.image_labels(repository, reference, "linux/arm64")
    assert labels["io.flops.model-version"] == str(version)
    assert client.get_model_version(f"flops-{project_id}", version).version == str(version)
    # Deleting the project stops the inference service
    assert manager.api("DELETE", f"/projects/{project_id}").status_code == 200
    assert _project_containers(project_id) == []


def test_unresolvable_dependencies_fail_with_the_resolvers_message_and_leave_nothing(
    manager: DockerManager, git_server: GitServer, tmp_path: Path
) -> None:
    # Prepare: the example, with a requirement no index can satisfy
    source = tmp_path / "unresolvable"
    subprocess.run(["cp", "-r", str(ROOT / "examples" / "sklearn-digits"), str(source)], check=True)
    (source / "requirements.txt").write_text("scikit-learn\niniconfig==0.0.1\n")
    git_server.publish("unresolvable", source)

    # Execute
    body = _body(git_server.url("unresolvable"), supported_platforms=["linux/amd64"])
    body.pop("learner_platforms")
    project_id = manager.api("POST", "/projects", json=body).json()["id"]
    project = manager.wait_state(project_id, FINAL, timeout=900)

    # Assert
    assert project["state"] == "failed"
    assert "resolve" in project["message"]
    assert "iniconfig==0.0.1" in project["message"]
    assert _project_containers(project_id) == []
    assert all(s["undeployed_at"] for s in project["services"])


def test_a_registry_that_is_down_fails_the_project_with_a_clear_error(
    tmp_path: Path, builder_image: str, git_server: GitServer, digits_repo: Path
) -> None:
    # Prepare: a manager whose registry nobody listens on
    dead = f"127.0.0.1:{free_port()}"
    manager = DockerManager(tmp_path, builder_image=builder_image, registry=dead)
    manager.start()
    try:
        # Execute
        body = _body(git_server.url("sklearn-digits"), supported_platforms=["linux/amd64"])
        body.pop("learner_platforms")
        project_id = manager.api("POST", "/projects", json=body).json()["id"]
        project = manager.wait_state(project_id, FINAL, timeout=300)
    finally:
        manager.stop()

    # Assert
    assert project["state"] == "failed"
    assert f"registry at {dead} is not reachable" in project["message"]
    assert _project_containers(project_id, running_only=False) == []


def test_health_says_what_is_wrong_when_the_docker_daemon_is_unreachable(
    tmp_path: Path, builder_image: str
) -> None:
    # Prepare
    manager = DockerManager(
        tmp_path, builder_image=builder_image, docker_host=f"unix://{tmp_path}/no-docker.sock",
        expect_healthy=False,
    )  # fmt: skip

    # Execute: it starts all the same (health is 503 while docker is down)
    manager.start()
    try:
        health = httpx.get(f"{manager.url}/api/flops/health", timeout=10)
        body = {
            "customerID": "Admin", "ml_repo_url": "https://example.invalid/x.git",
            "ml_model_flavor": "sklearn",
            "training_configuration": {"data_tags": ["digits"], "training_rounds": 1,
                                       "min_available_clients": 1},
        }  # fmt: skip
        project_id = manager.api("POST", "/projects", json=body).json()["id"]
        project = manager.wait_state(project_id, FINAL, timeout=60)
    finally:
        manager.stop()

    # Assert
    assert health.status_code == 503
    assert "not reachable" in health.json()["components"]["orchestrator"]
    assert project["state"] == "failed"
    assert "docker" in project["message"].lower() and "not reachable" in project["message"]


def test_the_builder_image_carries_the_builder_and_the_runtime_but_not_the_manager(
    builder_image: str,
) -> None:
    # Prepare: what a build job imports, and what it has no business carrying.
    probe = (
        "import importlib.util as u; "
        "print(' '.join(m for m in ('image_builder', 'flops_core', 'flops_utils', "
        "'flops_learner', 'flops_aggregator', 'flops_data_server', 'flops_manager', "
        "'flops_cli') if u.find_spec(m)))"
    )
    # Execute
    found = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", builder_image, "python", "-c", probe],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout.split()  # fmt: skip
    # Assert
    assert found == [
        "image_builder", "flops_core", "flops_utils", "flops_learner", "flops_aggregator",
        "flops_data_server",
    ]  # fmt: skip
