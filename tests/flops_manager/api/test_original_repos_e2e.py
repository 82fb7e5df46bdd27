"""Repos, data and SLA bodies of the original FLOps, unchanged, through a real manager.

Issue 13: an ML repo written in the original FLOps' style (a `conda.yaml` pinning
`python=3.10.14`, `mlflow=2.12.1`, `numpy=1.26.4`, `scikit-learn=1.4.2`; a `data_manager.py`
doing `dataset.set_format("numpy")` and `dataset["image"].reshape(...)`), its data pushed as the
original mock provider did (a `to_parquet` file with `Image`/`ClassLabel` features, sent by a
plain Flight `do_put`), and the original oak CLI's project body must train to `completed` on
the embedded default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from flops_manager.core.data_tags import stored_data_tag
from flops_utils.ml_data_client import MLDataClient, MLDataError
from tests.compat.original_data import digits_image_dataset, push_original_partitions
from tests.compat.original_repo import commit_repo, write_original_sklearn_repo
from tests.conftest import eventually
from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e

#: The learner nodes that get a partition (the body asks for two clients).
LEARNERS = 2


def original_sklearn_body(repo_url: str) -> dict[str, Any]:
    """The original oak CLI's `mnist_sklearn_small` project body, for `repo_url`."""
    return {
        "verbose": True, "customerID": "Admin", "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn", "use_devel_base_images": False,
        "supported_platforms": ["linux/amd64"],
        "training_configuration": {
            "mode": "classic", "data_tags": ["mnist"], "training_rounds": 3,
            "min_available_clients": 2, "min_fit_clients": 2, "min_evaluate_clients": 2,
        },
        "post_training_steps": ["build_image_for_trained_model", "deploy_trained_model_image"],
        "resource_constraints": {"memory": 100, "vcpus": 1, "storage": 0},
    }  # fmt: skip


def _answers(address: str) -> bool:
    try:
        with MLDataClient(address, timeout=2) as client:
            client.list_datasets()
    except MLDataError:
        return False
    return True


def test_an_original_sklearn_repo_trains_on_original_data_with_the_original_body(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    # Prepare: the repo, and the digits as PNG images on two nodes, pushed the original way
    # under the tag the manager reads for the Admin's `mnist`
    repo_url = commit_repo(write_original_sklearn_repo(tmp_path / "repo"))
    servers = [manager.data_server(node) for node in range(LEARNERS)]
    eventually(lambda: all(map(_answers, servers)), f"the data servers {servers} answer")
    push_original_partitions(
        digits_image_dataset(), servers, stored_data_tag("Admin", "mnist"), tmp_path
    )
    body = original_sklearn_body(repo_url)

    # Execute
    project = manager.run(body, timeout=900)

    # Assert: trained 3 rounds on both nodes' images, and ran the original post-training steps
    assert project["state"] == "completed", project["message"]
    project_id = project["id"]
    events = manager.api("GET", f"/projects/{project_id}/events").json()
    rounds = [e["data"]["metrics"] for e in events if e["type"] == "round_completed"]
    assert len(rounds) == 3, [e["type"] for e in events]
    # 75 % of each node's share of the 1797 digits trains, the rest evaluates
    assert all(m["learners"] == LEARNERS and m["examples"] == 1347 for m in rounds), rounds
    assert project["result"]["training"]["metrics"]["accuracy"] > 0.8
    steps = project["result"]["post_training"]
    assert [steps[step]["state"] for step in body["post_training_steps"]] == [
        "completed",
        "completed",
    ], steps
    # The served model reads pixels as the repo's data manager made them
    digits = load_digits()
    inputs = (np.clip(digits.images[-100:] * 16, 0, 255) / 255.0).reshape(100, -1)
    url = project["result"]["inference_url"]
    served = httpx.post(f"{url}/invocations", json={"inputs": inputs.tolist()}, timeout=60)
    assert served.status_code == 200, served.text
    predictions = np.asarray(served.json()["predictions"])
    assert (predictions == digits.target[-100:]).mean() > 0.8
    assert manager.api("DELETE", f"/projects/{project_id}").status_code == 200
