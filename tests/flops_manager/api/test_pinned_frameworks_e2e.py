"""Repos in the original FLOps style that pin old ML frameworks train on the embedded default.

Issue 13, points 2 and 3. A PyTorch repo pins `torch==2.1.1` and leaves `torchvision`
unpinned in its conda.yaml, and transforms an `img` column of PNG images with torchvision:
before, the runtime's torch won and torchvision broke at import. A TensorFlow repo pins
`tensorflow==2.12.0`, which needs numpy<1.24: before, pip failed with ResolutionImpossible
in seconds. A pin no release of which fits fails in one sentence naming both sides.

These tests install real frameworks from the machine's package indexes (PyPI): the
PyTorch environment is about 4.7 GB and takes about 70 s to build here, the TensorFlow
one about 1.9 GB and 60 s (of which about 40 s find the nearest TensorFlow release).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image
from PIL import Image as PILImage
from sklearn.datasets import load_digits

from tests.flops_manager.api.manager_process import ManagerProcess

pytestmark = pytest.mark.e2e

REPOS = Path(__file__).resolve().parent / "original_repos"
LEARNERS = 2
#: Seconds a project may take, environment build included (measured: about 3 min).
PROJECT_TIMEOUT = 720


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    """A manager with digits and a cifar10-like image dataset pushed to two learner nodes.

    The environments it builds (gigabytes each) are deleted afterwards.
    """
    manager = ManagerProcess(tmp_path_factory.mktemp("manager"))
    try:
        manager.start()
        manager.push_mock_data(partitions=LEARNERS)
        datasets_dir = manager.workdir / "data" / "datasets"
        datasets_dir.mkdir(parents=True, exist_ok=True)
        _cifar_like(datasets_dir / "cifar_mock.parquet")
        mock = {
            "dataset_name": "cifar_mock.parquet",
            "number_of_partitions": LEARNERS,
            "data_tag": "cifar",
        }
        pushed = manager.api(
            "POST", "/mocks", json={"customerID": "Admin", "mock_data_configuration": mock}
        )
        assert pushed.status_code == 201, pushed.text
        yield manager
    finally:
        manager.stop()
        shutil.rmtree(manager.workdir / "data" / "environments", ignore_errors=True)


def _cifar_like(path: Path) -> None:
    """600 16x16 RGB PNG images of digits in an `Image` column, `label` a ClassLabel.

    Written as the original mock-data provider wrote cifar10: a Hugging Face dataset saved
    with `to_parquet`, its features in the parquet metadata.
    """
    digits = load_digits()
    images = []
    for pixels, label in zip(digits.images[:600], digits.target[:600], strict=True):
        gray = np.kron(pixels / 16.0 * 255, np.ones((2, 2))).astype(np.uint8)
        rgb = np.stack([gray, np.roll(gray, label, axis=1), 255 - gray], axis=-1)
        buffer = io.BytesIO()
        PILImage.fromarray(rgb).save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = Features(
        {"img": Image(), "label": ClassLabel(names=[f"digit{i}" for i in range(10)])}
    )
    data = {"img": images, "label": [int(y) for y in digits.target[:600]]}
    Dataset.from_dict(data, features=features).to_parquet(str(path))


def _git_repo(source: Path, dest: Path) -> str:
    """`source`'s files as a one-commit Git repo; its file:// URL."""
    shutil.copytree(source, dest)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "repo"]):
        subprocess.run([*git, *args], cwd=dest, check=True)
    return f"file://{dest}"


def _body(repo_url: str, flavor: str, tag: str, rounds: int = 2) -> dict[str, Any]:
    return {
        "customerID": "Admin", "ml_repo_url": repo_url, "ml_model_flavor": flavor,
        "training_configuration": {
            "data_tags": [tag], "training_rounds": rounds, "min_available_clients": LEARNERS,
            "min_fit_clients": LEARNERS, "min_evaluate_clients": LEARNERS,
            "connect_timeout_s": 120,
        },
    }  # fmt: skip


def _events(manager: ManagerProcess, project_id: str, kind: str) -> list[dict[str, Any]]:
    events = manager.api("GET", f"/projects/{project_id}/events").json()
    return [e for e in events if e["type"] == kind]


def _learner_lines(manager: ManagerProcess, project_id: str, start: str) -> list[str]:
    logs = manager.api("GET", f"/projects/{project_id}/logs", params={"tail": 10_000}).json()
    return [
        line[line.index(start) :]
        for service in logs["services"]
        if service["role"] == "learner"
        for line in service["lines"]
        if start in line
    ]


@pytest.mark.timeout(PROJECT_TIMEOUT + 60)
def test_pinned_torch_with_unpinned_torchvision_trains_on_png_images(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    # Prepare
    url = _git_repo(REPOS / "pytorch_cifar", tmp_path / "pytorch-cifar")

    # Execute
    project = manager.run(_body(url, "pytorch", "cifar"), timeout=PROJECT_TIMEOUT)

    # Assert: it trained. MLflow 3.17 logs PyTorch models of torch>=2.5.0 only, so the pin
    # was relaxed to the nearest such release, and torchvision is the one built for it
    assert project["state"] == "completed", project["message"]
    (relaxed,) = _events(manager, project["id"], "dependency_relaxed")
    data = relaxed["data"]
    assert (data["package"], data["asked"], data["got"]) == ("torch", "torch==2.1.1", "2.5.0")
    assert "logs pytorch models of torch>=2.5.0 only" in data["why"]
    assert _events(manager, project["id"], "dependency_override") == []
    (versions,) = set(_learner_lines(manager, project["id"], "versions:"))
    torch, torchvision = versions.split()[2:5:2]
    assert torch.startswith("2.5.0") and torchvision.startswith("0.20.0"), versions
    assert project["result"]["training"]["metrics"]["accuracy"] > 0.1


@pytest.mark.timeout(PROJECT_TIMEOUT + 60)
def test_tensorflow_pin_that_needs_old_numpy_is_relaxed_and_trains(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    # Prepare
    url = _git_repo(REPOS / "tensorflow_digits", tmp_path / "tensorflow-digits")

    # Execute
    project = manager.run(_body(url, "tensorflow", "digits"), timeout=PROJECT_TIMEOUT)

    # Assert: one dependency_relaxed event says what was asked, what it got and why
    assert project["state"] == "completed", project["message"]
    (relaxed,) = _events(manager, project["id"], "dependency_relaxed")
    data = relaxed["data"]
    assert (data["package"], data["asked"]) == ("tensorflow", "tensorflow==2.12.0")
    assert data["got"].startswith("2.") and data["got"] > "2.12.0"
    assert "logs tensorflow models of tensorflow>=" in data["why"]
    assert relaxed["message"].startswith(f"tensorflow==2.12.0 relaxed to tensorflow {data['got']}")
    versions = set(_learner_lines(manager, project["id"], "versions:"))
    assert versions == {f"versions: tensorflow {data['got']}"}


def test_a_pin_no_release_of_which_fits_fails_in_one_sentence(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    # Prepare: every flwr-datasets release needs a datasets older than the runtime's
    source = tmp_path / "source"
    shutil.copytree(REPOS / "tensorflow_digits", source)
    (source / "requirements.txt").write_text("numpy\nflwr-datasets==0.5.0\n", encoding="utf-8")
    url = _git_repo(source, tmp_path / "flwr-datasets-repo")

    # Execute
    project = manager.run(_body(url, "tensorflow", "digits"), timeout=300)

    # Assert
    assert project["state"] == "failed"
    message = project["message"]
    assert "flwr-datasets==0.5.0 cannot be installed next to the FLOps runtime" in message
    assert "no other release of flwr-datasets fits" in message
    assert "the FLOps runtime requires datasets==" in message
    assert "flwr-datasets 0.5.0 depends on datasets<" in message
