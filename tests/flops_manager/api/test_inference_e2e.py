"""After training on the embedded default: the registered model served by `mlflow models serve`.

Mock data into three partitions, train `examples/sklearn-digits`, build (prepare the
environment) and deploy the inference server, then send 200 held-out digits to
`/invocations`: the served predictions must equal the registered model's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow.pyfunc
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ManagerProcess]:
    workdir = tmp_path / "manager"
    workdir.mkdir()
    manager = ManagerProcess(workdir)
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()


def test_the_trained_model_is_served_and_answers_like_the_registered_model(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare: three partitions of digits on the learner nodes
    manager.push_mock_data(partitions=3)
    body = {
        "customerID": "Admin", "ml_repo_url": repo_url, "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": 3, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3},
        "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"],
    }  # fmt: skip

    # Execute
    project = manager.run(body)
    project_id = project["id"]

    # Assert: completed, each step with its timing, the URL in the status
    assert project["state"] == "completed", project["message"]
    steps = project["result"]["post_training"]
    assert [steps[s]["state"] for s in body["post_training_steps"]] == ["completed", "completed"]
    assert all(steps[s]["duration_s"] >= 0 for s in body["post_training_steps"])
    url = project["result"]["inference_url"]
    assert url in project["message"]
    states = [e["type"] for e in manager.api("GET", f"/projects/{project_id}/events").json()
              if e["kind"] == "state"]  # fmt: skip
    assert states == ["pending", "building", "training", "post_training", "completed"]
    # 200 held-out digits: the served predictions equal the registered model's own
    digits = load_digits()
    inputs = digits.data[-200:].astype(float)
    served = httpx.post(f"{url}/invocations", json={"inputs": inputs.tolist()}, timeout=60)
    assert served.status_code == 200, served.text
    predictions = np.asarray(served.json()["predictions"])
    mlflow.set_tracking_uri(manager.api("GET", "/tracking").json()["tracking_url"])
    model = mlflow.pyfunc.load_model(steps["build_image_for_trained_model"]["model_uri"])
    assert predictions.tolist() == np.asarray(model.predict(inputs)).tolist()
    assert (predictions == digits.target[-200:]).mean() > 0.8
    # The inference service outlives the completed project until the project is deleted
    deleted = manager.api("DELETE", f"/projects/{project_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["state"] == "completed" and deleted.json()["stopped_services"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/ping", timeout=5)
    after = manager.api("GET", f"/projects/{project_id}").json()
    assert all(s["undeployed_at"] for s in after["services"])


def test_deploying_without_building_is_a_422_that_says_so(manager: ManagerProcess) -> None:
    body = {
        "customerID": "Admin", "ml_repo_url": "https://git.example/r.git",
        "ml_model_flavor": "sklearn", "training_configuration": {"data_tags": ["digits"]},
        "post_training_steps": ["deploy_trained_model_image"],
    }  # fmt: skip
    response = manager.api("POST", "/projects", json=body)
    assert response.status_code == 422
    assert "deploy_trained_model_image needs build_image_for_trained_model" in response.text
