"""`/api/flops/mocks`: jobs that split datasets (IID or Dirichlet) onto real data servers.

The in-process app runs without the embedded stack (`start_projects=False`); its data servers
are real `MLDataServer`s on free loopback ports, put in place of the stack's with a
dependency override.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flops_data_server import MLDataServer
from flops_manager.api.routes.mocks import get_data_servers
from flops_utils.ml_data_client import MLDataClient
from tests.conftest import free_port
from tests.flops_manager.api.manager_process import ManagerProcess

MOCKS = "/api/flops/mocks"
BUNDLED = "digits, iris, wine, breast_cancer"


@dataclass
class LocalDataServers:
    """Data servers of `nodes` nodes at `addresses` (what the embedded stack provides)."""

    addresses: list[str]

    @property
    def nodes(self) -> int:
        return len(self.addresses)

    def ensure_started(self) -> None:
        """They run already."""

    def data_server(self, node: int) -> str:
        return self.addresses[node % self.nodes]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[MLDataServer]]:
    started = [MLDataServer(tmp_path / f"node{i}", host="127.0.0.1", port=0) for i in range(3)]
    yield started
    for server in started:
        server.shutdown()


@pytest.fixture
def nodes(app: FastAPI, servers: list[MLDataServer]) -> LocalDataServers:
    data_servers = LocalDataServers([f"grpc://127.0.0.1:{s.port}" for s in servers])
    app.dependency_overrides[get_data_servers] = lambda: data_servers
    return data_servers


@pytest.fixture
def datasets_dir(tmp_path: Path) -> Path:
    """The app's datasets directory: `<data_dir>/datasets` (data_dir is tmp_path)."""
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


def body(dataset: str = "digits", partitions: int = 3, tag: str = "t", **extra: Any) -> dict:
    config = {"dataset_name": dataset, "number_of_partitions": partitions, "data_tag": tag}
    config.update(extra.pop("config", {}))
    return {"customerID": "Admin", "mock_data_configuration": config, **extra}


def stored(nodes: LocalDataServers, tag: str) -> list[str]:
    """Names of the datasets under the data servers' tag `tag` (`<customer>:<tag>`), all nodes."""
    names = []
    for address in nodes.addresses:
        with MLDataClient(address) as client:
            names.extend(info.name for info in client.list_datasets([tag]))
    return names


def problems(response: httpx.Response) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(p["loc"], p["msg"]) for p in response.json()["detail"]]


def customer_headers(client: TestClient, admin: dict[str, str], customer: str) -> dict[str, str]:
    created = client.post("/api/flops/tokens", headers=admin, json={"customer_id": customer})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}"}


def test_dirichlet_job_completes_with_histograms_and_measure(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    partitioning = {"kind": "dirichlet", "alpha": 0.1, "seed": 1}

    created = client.post(MOCKS, headers=admin, json=body(partitions=5, partitioning=partitioning))
    job = client.get(created.json()["url"], headers=admin).json()

    assert created.status_code == 201, created.text
    assert created.json()["state"] == "completed"
    assert created.headers["Location"] == created.json()["url"]
    assert job["state"] == "completed" and job["finished_at"] is not None
    assert job["partitioning"] == {**partitioning, "min_size": 1}
    # Mean pairwise total-variation distance of the partitions' label distributions.
    assert job["measure"]["name"] == "mean_pairwise_total_variation"
    assert job["measure"]["value"] > 0.5
    pushed = [e for e in job["events"] if e["type"] == "partition_pushed"]
    assert [e["data"]["partition"] for e in pushed] == [0, 1, 2, 3, 4]
    assert [e["data"]["node"] for e in pushed] == [0, 1, 2, 0, 1]
    assert sum(sum(e["data"]["label_histogram"].values()) for e in pushed) == 1797
    assert all(sum(e["data"]["label_histogram"].values()) == e["data"]["rows"] for e in pushed)
    assert [e["type"] for e in job["events"] if e["kind"] == "state"] == [
        "pending", "running", "completed",
    ]  # fmt: skip
    assert sorted(stored(nodes, "Admin:t")) == sorted(p["dataset"] for p in job["partitions"])


def test_default_is_iid_and_the_flops_body_still_works(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    created = client.post(f"{MOCKS}/", headers=admin, json=body(dataset="iris", partitions=3))

    assert created.status_code == 201, created.text
    result = created.json()
    assert result["data_tag"] == "t" and result["partitioning"] == {"kind": "iid", "seed": 0}
    assert [p["rows"] for p in result["partitions"]] == [50, 50, 50]
    assert {"partition", "node", "rows", "dataset"} <= set(result["partitions"][0])
    assert result["measure"]["value"] < 0.3
    assert len(stored(nodes, "Admin:t")) == 3


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_from_the_datasets_dir(
    client: TestClient,
    admin: dict[str, str],
    nodes: LocalDataServers,
    datasets_dir: Path,
    suffix: str,
) -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.normal(size=200), "kind": [f"class-{i % 4}" for i in range(200)]})
    (datasets_dir / "sub").mkdir()
    path = datasets_dir / "sub" / f"points{suffix}"
    if suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    partitioning = {"kind": "dirichlet", "alpha": 0.5}

    relative = client.post(
        MOCKS, headers=admin,
        json=body(f"sub/points{suffix}", 4, "rel", config={"label_column": "kind"},
                  partitioning=partitioning),
    )  # fmt: skip
    absolute = client.post(MOCKS, headers=admin, json=body(str(path), 2, "abs"))

    assert relative.status_code == 201, relative.text
    assert sum(p["rows"] for p in relative.json()["partitions"]) == 200
    labels = {k for p in relative.json()["partitions"] for k in p["label_histogram"]}
    assert labels == {"class-0", "class-1", "class-2", "class-3"}
    assert absolute.status_code == 201, absolute.text
    # No `label` column and IID: pushed, without label histograms.
    assert absolute.json()["partitions"][0]["label_histogram"] == {}
    assert absolute.json()["measure"]["value"] is None
    assert len(stored(nodes, "Admin:rel")) == 4 and len(stored(nodes, "Admin:abs")) == 2


def test_unknown_dataset_is_422_listing_the_valid_ones(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers, datasets_dir: Path
) -> None:
    # Not a file, not bundled, not of the form of a hub id (hub names: test_hub_mocks.py).
    [(loc, msg)] = problems(client.post(MOCKS, headers=admin, json=body("my digits")))

    assert loc == ["body", "mock_data_configuration", "dataset_name"]
    assert "unknown dataset 'my digits'" in msg and BUNDLED in msg
    assert "or a Hugging Face hub dataset (mnist, cifar10, owner/name)" in msg
    assert str(datasets_dir) in msg and "FLOPS_DATASETS_DIR" in msg
    assert client.get(MOCKS, headers=admin).json() == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../outside.csv", "outside the manager's datasets directory"),
        ("/etc/passwd", "outside the manager's datasets directory"),
        ("link/outside.csv", "outside the manager's datasets directory"),
        ("missing.csv", "no such file"),
        ("broken.parquet", "cannot be read as parquet"),
        ("my notes.txt", "unknown dataset 'my notes.txt'"),
        ("sub/notes.txt", "only .parquet, .pq, .csv files"),
    ],
)
def test_unusable_files_are_422(
    client: TestClient,
    admin: dict[str, str],
    nodes: LocalDataServers,
    datasets_dir: Path,
    tmp_path: Path,
    name: str,
    expected: str,
) -> None:
    (tmp_path / "outside.csv").write_text("x,label\n1,0\n2,1\n")
    (datasets_dir / "link").symlink_to(tmp_path)
    (datasets_dir / "broken.parquet").write_bytes(b"not parquet")
    (datasets_dir / "sub").mkdir()
    (datasets_dir / "sub" / "notes.txt").write_text("x,label\n1,0\n")

    [(loc, msg)] = problems(client.post(MOCKS, headers=admin, json=body(name, 1)))

    assert loc == ["body", "mock_data_configuration", "dataset_name"]
    assert expected in msg and BUNDLED in msg
    assert stored(nodes, "Admin:t") == []


def test_bad_partitioning_and_label_column_are_422_naming_the_field(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers, datasets_dir: Path
) -> None:
    pa_csv.write_csv(pa.table({"x": [1.0, 2.0, 3.0]}), datasets_dir / "nolabel.csv")
    dirichlet = {"kind": "dirichlet", "alpha": 0.1}

    zero_alpha = problems(
        client.post(MOCKS, headers=admin, json=body(partitioning={"kind": "dirichlet", "alpha": 0}))
    )
    no_alpha = problems(
        client.post(MOCKS, headers=admin, json=body(partitioning={"kind": "dirichlet"}))
    )
    bad_kind = problems(client.post(MOCKS, headers=admin, json=body(partitioning={"kind": "x"})))
    no_label = problems(
        client.post(MOCKS, headers=admin, json=body("nolabel.csv", partitioning=dirichlet))
    )
    named_label = problems(
        client.post(MOCKS, headers=admin, json=body(config={"label_column": "y"}))
    )
    too_many = problems(client.post(MOCKS, headers=admin, json=body("nolabel.csv", 4)))

    assert zero_alpha[0][0] == ["body", "partitioning", "dirichlet", "alpha"]
    assert "greater than 0" in zero_alpha[0][1]
    assert no_alpha[0][0] == ["body", "partitioning", "dirichlet", "alpha"]
    assert bad_kind[0][0] == ["body", "partitioning"] and "iid" in bad_kind[0][1]
    assert no_label[0][0] == ["body", "mock_data_configuration", "dataset_name"]
    assert "no label column 'label'" in no_label[0][1] and "label_column" in no_label[0][1]
    assert "no label column 'y'" in named_label[0][1]
    assert too_many[0][0] == ["body", "mock_data_configuration", "number_of_partitions"]
    assert stored(nodes, "Admin:t") == []


def test_get_list_delete_lifecycle_and_customers(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    alice = customer_headers(client, admin, "alice")
    bob = customer_headers(client, admin, "bob")
    mine = client.post(MOCKS, headers=alice, json=body("wine", 3, "wine") | {"customerID": "alice"})
    assert mine.status_code == 201, mine.text
    job_id = mine.json()["id"]
    foreign = client.post(MOCKS, headers=alice, json=body("wine", 3, "x") | {"customerID": "bob"})

    listed_alice = client.get(MOCKS, headers=alice).json()
    listed_bob = client.get(f"{MOCKS}/", headers=bob).json()
    as_bob = client.get(f"{MOCKS}/{job_id}", headers=bob)
    delete_as_bob = client.delete(f"{MOCKS}/{job_id}", headers=bob)
    on_servers = stored(nodes, "alice:wine")
    deleted = client.delete(f"{MOCKS}/{job_id}/", headers=alice)
    again = client.delete(f"{MOCKS}/{job_id}", headers=alice)
    after = client.get(f"{MOCKS}/{job_id}/", headers=alice).json()

    assert mine.json()["customer_id"] == "alice"
    assert foreign.status_code == 403
    assert [j["id"] for j in listed_alice] == [job_id]
    assert listed_bob == []
    assert [j["id"] for j in client.get(MOCKS, headers=admin).json()] == [job_id]
    assert as_bob.status_code == 404 and delete_as_bob.status_code == 404
    assert as_bob.json()["detail"] == f"mock-data job {job_id} not found"
    assert len(on_servers) == 3
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": job_id, "state": "deleted"}
    assert stored(nodes, "alice:wine") == []
    assert again.status_code == 409 and "already deleted" in again.json()["detail"]
    assert after["state"] == "deleted"
    assert all(p["dropped"] for p in after["partitions"])
    assert [e["type"] for e in after["events"]].count("partition_dropped") == 3


def test_wait_false_answers_pending_and_the_job_completes(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    created = client.post(f"{MOCKS}?wait=false", headers=admin, json=body("iris", 2, "async"))

    assert created.status_code == 201, created.text
    assert created.json()["state"] == "pending"
    # The test client returns once the background task has run.
    assert client.get(created.json()["url"], headers=admin).json()["state"] == "completed"
    assert len(stored(nodes, "Admin:async")) == 2


def test_a_failed_push_leaves_no_partial_partitions(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    nodes.addresses.append(f"grpc://127.0.0.1:{free_port()}")  # node 3: nobody listens

    failed = client.post(MOCKS, headers=admin, json=body("digits", 4, "half"))

    assert failed.status_code == 503, failed.text
    answer = failed.json()
    assert answer["state"] == "failed" and "cannot reach the ML data server" in answer["detail"]
    assert stored(LocalDataServers(nodes.addresses[:3]), "Admin:half") == []
    job = client.get(answer["url"], headers=admin).json()
    assert [e["type"] for e in job["events"]].count("partition_dropped") == 3


def test_without_data_servers_post_is_503(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(MOCKS, headers=admin, json=body())

    assert response.status_code == 503
    assert client.get(MOCKS, headers=admin).json() == []


@pytest.mark.e2e
def test_non_iid_job_on_the_real_manager_and_delete_drops_the_data(
    manager_server: ManagerProcess,
) -> None:
    headers = {"Authorization": f"Bearer {manager_server.admin_token}"}
    partitioning = {"kind": "dirichlet", "alpha": 0.1, "seed": 7}
    with httpx.Client(base_url=manager_server.url, headers=headers, timeout=180) as http:
        created = http.post(MOCKS, json=body(partitions=3, tag="e2e", partitioning=partitioning))
        assert created.status_code == 201, created.text
        job = http.get(created.json()["url"]).json()
        servers = sorted({p["data_server"] for p in job["partitions"]})
        before = [_names(address, "Admin:e2e") for address in servers]
        deleted = http.delete(f"{MOCKS}/{job['id']}")
        after = [_names(address, "Admin:e2e") for address in servers]

    assert job["state"] == "completed" and job["measure"]["value"] > 0.5
    histograms = [e["data"]["label_histogram"] for e in job["events"]
                  if e["type"] == "partition_pushed"]  # fmt: skip
    assert len(histograms) == 3 and sum(sum(h.values()) for h in histograms) == 1797
    assert len(servers) == 3 and all(len(names) == 1 for names in before)
    assert deleted.status_code == 200, deleted.text
    assert after == [[], [], []]


def _names(address: str, tag: str) -> list[str]:
    with MLDataClient(address) as client:
        return [info.name for info in client.list_datasets([tag])]


def test_each_customers_tag_is_stored_in_its_own_namespace(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    alice = customer_headers(client, admin, "alice")
    carol = customer_headers(client, admin, "carol")

    mine = client.post(
        MOCKS, headers=alice, json=body("digits", 3, "digits") | {"customerID": "alice"}
    )
    # Without customerID the job is the caller's.
    theirs = client.post(MOCKS, headers=carol, json=_without_customer(body("iris", 3, "digits")))
    listed = client.get(MOCKS, headers=alice).json()

    assert mine.status_code == 201 and theirs.status_code == 201, (mine.text, theirs.text)
    assert (mine.json()["data_tag"], mine.json()["stored_data_tag"]) == ("digits", "alice:digits")
    assert theirs.json()["stored_data_tag"] == "carol:digits"
    assert "stored as alice:digits" in mine.json()["message"]
    assert [(j["id"], j["stored_data_tag"]) for j in listed] == [
        (mine.json()["id"], "alice:digits")
    ]
    assert sorted(stored(nodes, "alice:digits")) == sorted(
        p["dataset"] for p in mine.json()["partitions"]
    )
    assert sum(p["rows"] for p in theirs.json()["partitions"]) == 150
    assert len(stored(nodes, "carol:digits")) == 3
    assert stored(nodes, "digits") == []  # nothing where every project could read it


def test_only_the_admin_pushes_shared_data(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    alice = customer_headers(client, admin, "alice")
    shared = body("wine", 3, "shared:wine")

    by_alice = client.post(MOCKS, headers=alice, json=shared | {"customerID": "alice"})
    for_alice = client.post(MOCKS, headers=admin, json=shared | {"customerID": "alice"})
    forged = client.post(
        MOCKS, headers=alice, json=_without_customer(body("wine", 3, "carol:wine"))
    )
    by_admin = client.post(MOCKS, headers=admin, json=shared)

    assert by_alice.status_code == 403 and "only the admin" in by_alice.json()["detail"]
    assert for_alice.status_code == 403, for_alice.text
    assert problems(forged)[0][0] == ["body", "mock_data_configuration", "data_tag"]
    assert by_admin.status_code == 201, by_admin.text
    assert by_admin.json()["data_tag"] == "shared:wine"
    assert by_admin.json()["stored_data_tag"] == "wine"
    assert len(stored(nodes, "wine")) == 3
    assert stored(nodes, "alice:wine") == [] and stored(nodes, "Admin:wine") == []
    assert client.get(MOCKS, headers=alice).json() == []


def _without_customer(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "customerID"}


def test_a_partitioning_without_kind_is_iid_as_documented(
    client: TestClient, admin: dict[str, str], nodes: LocalDataServers
) -> None:
    # Execute: the schema documents `kind` with the default `iid`
    created = client.post(MOCKS, headers=admin, json=body(partitioning={}))

    # Assert
    assert created.status_code == 201, created.text
    assert created.json()["partitioning"]["kind"] == "iid"
