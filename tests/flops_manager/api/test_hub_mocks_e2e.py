"""The real manager loads a Hugging Face hub dataset for the original oak CLI's mock body.

`python -m flops_manager` gets `HF_ENDPOINT` pointing at a `FakeHub` (a repo the test wrote;
no network). It loads `mnist` into its data servers, where a repo's `load_dataset()` reads
it back with the hub dataset's columns and features; once the hub is gone, the same body is
a 503 that names the field.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

from flops_utils.ml_repo_building_blocks import clear_data_source, configure_data_source
from flops_utils.ml_repo_building_blocks import load_dataset as flops_load_dataset
from tests.fakes.hf_hub import FakeHub, write_image_dataset_repo
from tests.flops_manager.api.manager_process import ManagerProcess
from tests.flops_manager.api.test_hub_mocks import BUNDLED, OAK_MNIST_1, OAK_MNIST_3

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    repo = tmp_path_factory.mktemp("hub") / "mnist"
    write_image_dataset_repo(repo, config_name="mnist", image_column="image", rows={"train": 90})
    with FakeHub({"ylecun/mnist": repo}) as fake:
        yield fake


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, hub: FakeHub) -> Iterator[ManagerProcess]:
    """A real manager whose hub is the fake one (the test session's default is offline)."""
    manager = ManagerProcess(
        tmp_path_factory.mktemp("manager"), HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0"
    )
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()


def test_the_oak_cli_mnist_body_on_the_real_manager_then_the_hub_goes_away(
    manager: ManagerProcess, hub: FakeHub
) -> None:
    created = manager.api("POST", "/mocks", json=OAK_MNIST_3)
    assert created.status_code == 201, created.text
    job = created.json()
    node = job["partitions"][0]["data_server"]
    configure_data_source(node, [job["stored_data_tag"]])
    try:
        dataset = flops_load_dataset()
    finally:
        clear_data_source()
    hub.stop()

    started = time.monotonic()
    refused = manager.api("POST", "/mocks", json=OAK_MNIST_1)
    took = time.monotonic() - started

    assert job["state"] == "completed" and len(job["partitions"]) == 3
    assert sum(p["rows"] for p in job["partitions"]) == 90
    assert dataset.column_names == ["image", "label"] and dataset.num_rows == 30
    assert isinstance(dataset.features["image"], datasets.Image)
    assert isinstance(dataset.features["label"], datasets.ClassLabel)
    assert Path(manager.env["FLOPS_DATA_DIR"], "huggingface", "hub").is_dir()
    assert refused.status_code == 503, refused.text
    detail = refused.json()["detail"]
    assert "mock_data_configuration.dataset_name 'mnist'" in detail
    assert "the hub cannot be reached" in detail and BUNDLED in detail
    assert took < 15
