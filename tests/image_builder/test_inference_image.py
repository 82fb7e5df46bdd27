"""A real inference image of a registered sklearn digits model, for amd64 and arm64, served.

Needs dockerd, Buildah, qemu's arm64 binfmt and the registry on 127.0.0.1:5050 with the
sklearn flavour base or the bootstrapped base image (`make container-env`). The model is
trained here, logged the way the aggregator logs it (MLflow 3 `name=`, skops, the repo's
requirements), registered with alias `champion` on a real tracking server; the image is
pushed under the test-only namespace `flopstest-inf-<random>` and deleted afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from flops_core.mlflow_server import MlflowServer, start_mlflow_server
from flops_core.registry_client import MANIFEST_ACCEPT, RegistryClient, split_ref
from image_builder import inference_image_ref
from tests.conftest import EventReceiver, eventually, free_port
from tests.image_builder.conftest import EXAMPLES, REGISTRY

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

PLATFORMS = ("linux/amd64", "linux/arm64")
CUSTOMER = f"flopstest-inf-{uuid.uuid4().hex[:8]}"


def _docker(*args: str, timeout: float = 600) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path / "mlflow", port=free_port())
    yield server
    server.stop()


@dataclass
class Leftovers:
    """What a test made: containers to remove, registry refs (and their pulls) to delete."""

    containers: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)


@pytest.fixture
def cleanup() -> Iterator[Leftovers]:
    made = Leftovers()
    yield made
    for container in made.containers:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True)
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}} {{.ID}}"], capture_output=True, text=True
    ).stdout.splitlines()
    pulled = {line.split()[1] for line in listed if line.startswith(f"{REGISTRY}/{CUSTOMER}/")}
    if pulled:
        subprocess.run(["docker", "rmi", "--force", *sorted(pulled)], capture_output=True)
    for ref in made.refs:
        _, repository, tag = split_ref(ref)
        head = httpx.head(
            f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        digest = head.headers.get("Docker-Content-Digest")
        if digest:
            httpx.delete(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}")


def _register_digits_model(tracking_uri: str, name: str) -> tuple[np.ndarray, str]:
    """Train, log and register a digits classifier as the aggregator does; the held-out X."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x_train, y_train, x_test, y_test = x[:-200], y[:-200], x[-200:], y[-200:]
    model = LogisticRegression(max_iter=300).fit(x_train, y_train)
    requirements = (EXAMPLES / "sklearn-digits" / "requirements.txt").read_text().split()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with mlflow.start_run() as run:
        mlflow.set_tags({"flops.commit": "0123abcd", "flops.repo_url": "https://x/digits.git"})
        mlflow.log_metrics({"accuracy": float(model.score(x_test, y_test)), "loss": 0.25})
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, pip_requirements=requirements
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_alias(name, "champion", str(info.registered_model_version))
    return x_test, run.info.run_id


def _build(
    tracking_uri: str, model_uri: str, project_id: str, events: EventReceiver, work: Path
) -> subprocess.CompletedProcess[str]:
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "FLOPS_TRACKING_URI": tracking_uri,
        "FLOPS_CALLBACK_URL": events.url,
        "FLOPS_CALLBACK_TOKEN": "t",
    }
    return subprocess.run(
        [
            *(sys.executable, "-m", "image_builder", "build-inference"),
            *("--model-uri", model_uri, "--registry", REGISTRY),
            *("--customer", CUSTOMER, "--project-id", project_id),
            *("--platforms", ",".join(PLATFORMS), "--work-dir", str(work)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )


def _platform_ref(ref: str, platform: str) -> str:
    _, repository, reference = split_ref(ref)
    with RegistryClient(REGISTRY, tls_verify=False) as client:
        info = client.manifest(repository, reference)
    assert info is not None
    return f"{REGISTRY}/{repository}@{info.platform_digest(platform)}"


def _serve(image: str, platform: str, made: Leftovers, timeout: float) -> str:
    """Run `image`, wait for `GET /ping`; return the server's URL."""
    port = free_port()
    name = f"{CUSTOMER}-{platform.replace('/', '-')}"
    made.containers.append(name)
    _docker(
        *("run", "-d", "--name", name, "--platform", platform),
        *("-p", f"127.0.0.1:{port}:8080", image),
    )
    url = f"http://127.0.0.1:{port}"
    eventually(
        lambda: httpx.get(f"{url}/ping", timeout=2), lambda: f"{image} ready:\n{_logs(name)}",
        timeout, until=lambda ping: ping.status_code == 200, interval=0.5,
        retry_on=(httpx.HTTPError,),
    )  # fmt: skip
    return url


def _logs(container: str) -> str:
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    return f"{logs.stdout}\n{logs.stderr}"


def _predict(url: str, rows: np.ndarray) -> list[Any]:
    response = httpx.post(
        f"{url}/invocations", json={"inputs": rows.tolist()}, timeout=60
    ).raise_for_status()
    return list(response.json()["predictions"])


def test_inference_image_of_registered_digits_model(
    tmp_path: Path, tracking: MlflowServer, events: EventReceiver, cleanup: Leftovers
) -> None:
    # Prepare: a registered model version with alias champion, and its own predictions.
    import mlflow.pyfunc

    project_id = f"p{uuid.uuid4().hex[:8]}"
    model_name = f"flops-{project_id}"
    x_test, run_id = _register_digits_model(tracking.url, model_name)
    model_uri = f"models:/{model_name}@champion"
    expected = mlflow.pyfunc.load_model(model_uri).predict(x_test).tolist()

    ref = inference_image_ref(REGISTRY, CUSTOMER, project_id, "1")
    cleanup.refs.append(ref)

    # Execute
    started = time.monotonic()
    result = _build(tracking.url, model_uri, project_id, events, tmp_path / "work")
    seconds = time.monotonic() - started
    print(f"build-inference: {seconds:.1f} s\n{result.stderr[-3000:]}")
    assert result.returncode == 0, result.stderr[-5000:]

    # Assert: the events, the image for both platforms, its labels.
    succeeded = events.wait_for("succeeded", timeout=30)
    data = succeeded["data"]
    print("timings:", json.dumps(data["timings"]))
    assert succeeded["source"] == "builder"
    assert data["version"] == "1"
    assert data["platforms"] == list(PLATFORMS)
    assert data["image"].startswith(f"{ref}@sha256:")
    assert result.stdout.strip() == f"inference: {data['image']}"
    steps = [e["data"]["step"] for e in events.of_type("step_completed")]
    assert steps == list(data["timings"])
    dependencies = next(
        e["data"] for e in events.of_type("step_completed") if e["data"]["step"] == "dependencies"
    )
    assert dependencies["packages"] == []  # the sklearn flavour base has all it needs
    _, repository, tag = split_ref(ref)
    with RegistryClient(REGISTRY, tls_verify=False) as client:
        info = client.manifest(repository, tag)
        assert info is not None and info.has_platforms(PLATFORMS)
        for platform in PLATFORMS:
            labels = client.image_labels(repository, tag, platform)
            assert {
                "org.opencontainers.image.version": "1",
                "org.opencontainers.image.revision": "0123abcd",
                "org.opencontainers.image.source": "https://x/digits.git",
                "io.flops.project": project_id,
                "io.flops.model-name": model_name,
                "io.flops.model-version": "1",
                "io.flops.model-uri": model_uri,
                "io.flops.run-id": run_id,
                "io.flops.metric.loss": "0.25",
            }.items() <= labels.items()
            assert 0.8 < float(labels["io.flops.metric.accuracy"]) <= 1.0

    # Assert: the amd64 image serves the registered model's predictions.
    served = time.monotonic()
    url = _serve(_platform_ref(data["image"], "linux/amd64"), "linux/amd64", cleanup, 120)
    assert _predict(url, x_test) == expected
    print(f"amd64 image pulled, started and answered in {time.monotonic() - served:.1f} s")

    # Assert: the arm64 image runs under emulation and answers the same.
    served = time.monotonic()
    url = _serve(_platform_ref(data["image"], "linux/arm64"), "linux/arm64", cleanup, 300)
    assert _predict(url, x_test[:5]) == expected[:5]
    print(f"arm64 image pulled, started and answered in {time.monotonic() - served:.1f} s")
