"""`/api/flops/mocks` with Hugging Face hub datasets, as the original FLOps SLAs name them.

No test touches the network. The loading path runs for real (`datasets.load_dataset` by
name, in the manager's child process, cached under the data dir) against `FakeHub`: the
Hub's HTTP API on a local port, serving dataset repos the tests write (parquet files made
with `datasets`, README metadata as the Hub's). An unreachable hub is a closed local port,
or a port that accepts connections and never answers.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from flops_data_server import MLDataServer
from flops_manager.api.routes.mocks import get_data_servers
from flops_manager.core.config import Settings
from flops_manager.db import Database
from flops_manager.main import create_app
from flops_utils.ml_data_client import MLDataClient
from tests.conftest import CLOSED_HUB_ENDPOINT
from tests.fakes.hf_hub import FakeHub, write_image_dataset_repo
from tests.flops_manager.api.conftest import ADMIN_TOKEN
from tests.flops_manager.api.test_mocks import BUNDLED, LocalDataServers, problems

MOCKS = "/api/flops/mocks"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: The original oak CLI's mock-data bodies, verbatim.
OAK_MNIST_3 = {
    "customerID": "Admin",
    "mock_data_configuration": {
        "dataset_name": "mnist",
        "number_of_partitions": 3,
        "data_tag": "mnist",
    },
}
OAK_MNIST_1 = {
    "customerID": "Admin",
    "mock_data_configuration": {
        "dataset_name": "mnist",
        "number_of_partitions": 1,
        "data_tag": "mnist",
    },
}


def oak_body(dataset: str, partitions: int, tag: str | None = None) -> dict[str, Any]:
    """The original SLA body for `dataset` (`mnist`, `cifar10`) in `partitions` parts."""
    config = {
        "dataset_name": dataset,
        "number_of_partitions": partitions,
        "data_tag": tag or dataset,
    }
    return {"customerID": "Admin", "mock_data_configuration": config}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """A fake hub with `ylecun/mnist` (config `mnist`, `image`) and `uoft-cs/cifar10` (`img`)."""
    root = tmp_path_factory.mktemp("hub")
    write_image_dataset_repo(root / "mnist", config_name="mnist", image_column="image")
    write_image_dataset_repo(root / "cifar10", config_name="plain_text", image_column="img")
    with FakeHub({"ylecun/mnist": root / "mnist", "uoft-cs/cifar10": root / "cifar10"}) as fake:
        yield fake


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[LocalDataServers]:
    started = [MLDataServer(tmp_path / f"node{i}", host="127.0.0.1", port=0) for i in range(3)]
    yield LocalDataServers([f"grpc://127.0.0.1:{s.port}" for s in started])
    for server in started:
        server.shutdown()


class Manager:
    """An in-process manager app whose hub settings a test picks; data servers are real."""

    def __init__(self, tmp_path: Path, servers: LocalDataServers) -> None:
        self.data_dir = tmp_path / "data"
        self._servers = servers
        self._clients: list[TestClient] = []
        self._databases: list[Database] = []

    def client(self, **hub: Any) -> TestClient:
        """A started test client of an app with the hub settings `hub` (e.g. hub_endpoint)."""
        hub = {"hub_offline": False, **hub}
        settings = Settings(admin_token=ADMIN_TOKEN, data_dir=self.data_dir, _env_file=None, **hub)
        database = Database(f"sqlite:///{self.data_dir / 'flops.db'}")
        app = create_app(settings, database=database, start_projects=False)
        app.dependency_overrides[get_data_servers] = lambda: self._servers
        client = TestClient(app)
        client.__enter__()
        self._clients.append(client)
        self._databases.append(database)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.__exit__(None, None, None)
        for database in self._databases:
            database.close()


@pytest.fixture
def manager(tmp_path: Path, servers: LocalDataServers) -> Iterator[Manager]:
    (tmp_path / "data").mkdir()
    made = Manager(tmp_path, servers)
    yield made
    made.close()


def pushed_tables(job: dict[str, Any]) -> list[pa.Table]:
    """The partitions of a job as the data servers hold them."""
    tables = []
    for partition in job["partitions"]:
        with MLDataClient(partition["data_server"]) as client:
            tables.append(client.fetch_table([partition["dataset"].split(".", 1)[0]]))
    return tables


def features_of(table: pa.Table) -> datasets.Features:
    """The Hugging Face features stored in a table's schema metadata under `huggingface`."""
    metadata = json.loads(table.schema.metadata[b"huggingface"])
    return datasets.Features.from_dict(metadata["info"]["features"])


@pytest.mark.parametrize(
    ("body", "image_column", "parts"),
    [(OAK_MNIST_3, "image", 3), (OAK_MNIST_1, "image", 1), (oak_body("cifar10", 1), "img", 1)],
    ids=["mnist-3", "mnist-1", "cifar10-1"],
)
def test_the_original_sla_bodies_load_the_hub_dataset_with_its_own_columns(
    manager: Manager, hub: FakeHub, body: dict[str, Any], image_column: str, parts: int
) -> None:
    client = manager.client(hub_endpoint=hub.url)

    created = client.post(MOCKS, headers=ADMIN, json=body)

    assert created.status_code == 201, created.text
    job = client.get(created.json()["url"], headers=ADMIN).json()
    assert job["state"] == "completed", job["message"]
    types = [e["type"] for e in job["events"]]
    assert (
        types.index("dataset_loading") < types.index("dataset_loaded") < types.index("partitioned")
    )
    loaded = next(e for e in job["events"] if e["type"] == "dataset_loaded")["data"]
    assert loaded == {"rows": 60, "columns": [image_column, "label"]}  # the "train" split
    tables = pushed_tables(job)
    assert len(tables) == parts and sum(t.num_rows for t in tables) == 60
    for table in tables:
        assert table.column_names == [image_column, "label"]
        features = features_of(table)
        assert isinstance(features[image_column], datasets.Image)
        assert features["label"] == datasets.ClassLabel(names=[str(i) for i in range(10)])
    # Partitions hold the original PNG bytes, as the original provider pushed them.
    first = datasets.Dataset(tables[0]).with_format("numpy")
    assert first[0][image_column].shape == (8, 8)
    assert sum(sum(p["label_histogram"].values()) for p in job["partitions"]) == 60
    # Downloaded and prepared into the manager's data dir.
    assert (manager.data_dir / "huggingface" / "hub" / "datasets--ylecun--mnist").is_dir() == (
        image_column == "image"
    )


def test_a_cached_hub_dataset_loads_with_the_hub_offline(manager: Manager, hub: FakeHub) -> None:
    online = manager.client(hub_endpoint=hub.url)
    assert online.post(MOCKS, headers=ADMIN, json=OAK_MNIST_1).status_code == 201
    asked = len(hub.requests)
    offline = manager.client(hub_endpoint=hub.url, hub_offline=True)

    again = offline.post(MOCKS, headers=ADMIN, json=OAK_MNIST_3)

    assert again.status_code == 201, again.text
    assert sum(p["rows"] for p in again.json()["partitions"]) == 60
    assert len(hub.requests) == asked  # nothing was asked of the hub


def test_an_unreachable_hub_is_503_naming_the_field_and_the_alternatives(
    manager: Manager,
) -> None:
    client = manager.client(hub_endpoint=CLOSED_HUB_ENDPOINT)

    started = time.monotonic()
    answer = client.post(MOCKS, headers=ADMIN, json=OAK_MNIST_3)
    took = time.monotonic() - started

    assert answer.status_code == 503, answer.text
    detail = answer.json()["detail"]
    assert "mock_data_configuration.dataset_name 'mnist'" in detail
    assert "the hub cannot be reached" in detail and CLOSED_HUB_ENDPOINT in detail
    assert BUNDLED in detail and str(manager.data_dir / "datasets") in detail
    assert "FLOPS_DATASETS_DIR" in detail
    assert took < 10
    assert client.get(MOCKS, headers=ADMIN).json() == []  # no job was made


def test_a_hub_that_never_answers_is_503_after_the_timeout(manager: Manager) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = manager.client(hub_endpoint=endpoint, hub_timeout_s=1.0)

        started = time.monotonic()
        answer = client.post(MOCKS, headers=ADMIN, json=oak_body("cifar10", 2))
        took = time.monotonic() - started

    assert answer.status_code == 503, answer.text
    assert "mock_data_configuration.dataset_name 'cifar10'" in answer.json()["detail"]
    assert "ReadTimeout" in answer.json()["detail"]
    assert 1.0 <= took < 5.0


def test_offline_and_not_cached_is_503_saying_so(manager: Manager, hub: FakeHub) -> None:
    client = manager.client(hub_endpoint=hub.url, hub_offline=True)

    answer = client.post(MOCKS, headers=ADMIN, json=OAK_MNIST_3)

    assert answer.status_code == 503, answer.text
    assert "HF_HUB_OFFLINE" in answer.json()["detail"]
    assert "mock_data_configuration.dataset_name 'mnist'" in answer.json()["detail"]


def test_a_name_the_hub_does_not_have_is_422(manager: Manager, hub: FakeHub) -> None:
    client = manager.client(hub_endpoint=hub.url)
    answer = client.post(MOCKS, headers=ADMIN, json=oak_body("nobody/none", 1, "none"))

    [(loc, msg)] = problems(answer)

    assert loc == ["body", "mock_data_configuration", "dataset_name"]
    assert "has no public dataset 'nobody/none'" in msg and BUNDLED in msg


def test_with_hub_datasets_off_a_hub_name_is_422_saying_so(manager: Manager) -> None:
    client = manager.client(hub_datasets=False)

    [(loc, msg)] = problems(client.post(MOCKS, headers=ADMIN, json=OAK_MNIST_3))

    assert loc == ["body", "mock_data_configuration", "dataset_name"]
    assert "unknown dataset 'mnist'" in msg and "FLOPS_HUB_DATASETS" in msg and BUNDLED in msg


def test_bundled_names_and_files_never_ask_the_hub(
    manager: Manager, hub: FakeHub, tmp_path: Path
) -> None:
    client = manager.client(hub_endpoint=hub.url)
    datasets_dir = manager.data_dir / "datasets"
    (datasets_dir / "ylecun").mkdir(parents=True)
    (datasets_dir / "ylecun" / "mnist").write_text("x,label\n1,0\n")  # a file, not the hub's
    asked = len(hub.requests)

    bundled = client.post(MOCKS, headers=ADMIN, json=oak_body("digits", 3))
    a_file = client.post(MOCKS, headers=ADMIN, json=oak_body("ylecun/mnist", 1, "file"))

    assert bundled.status_code == 201, bundled.text
    assert sum(p["rows"] for p in bundled.json()["partitions"]) == 1797
    assert "only .parquet, .pq, .csv files" in problems(a_file)[0][1]
    assert len(hub.requests) == asked
