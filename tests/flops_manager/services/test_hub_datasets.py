"""Loading hub datasets in a child process: bounded by time, stopped by a DELETE, errors sorted.

The hub is a `FakeHub` (repos the tests write), a closed local port, or a socket that
accepts connections and never answers; nothing here reaches the network.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flops_manager.db import Database
from flops_manager.schemas.mock_data import MockDataRequest, MockJobState
from flops_manager.services.hub_datasets import (
    HubAccess,
    HubDatasetError,
    HubUnavailableError,
    is_hub_name,
    load_hub_dataset,
    repo_id_of,
)
from flops_manager.services.mock_datasets import DatasetRequest, RequestedDataset, check_dataset
from flops_manager.services.mock_jobs import MockJobs, create_job
from flops_manager.services.tokens import ADMIN_CUSTOMER_ID, Caller
from tests.conftest import CLOSED_HUB_ENDPOINT
from tests.fakes.hf_hub import FakeHub, write_image_dataset_repo


def access(endpoint: str, cache: Path, *, timeout_s: float = 30, load_s: float = 60) -> HubAccess:
    return HubAccess(
        enabled=True,
        endpoint=endpoint,
        offline=False,
        timeout_s=timeout_s,
        load_timeout_s=load_s,
        cache_dir=cache,
    )


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A hub that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(60)
        yield server


def url_of(server: socket.socket) -> str:
    return f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_delete_stops_the_download_and_cancels_the_job(
    tmp_path: Path, silent: socket.socket
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    jobs = MockJobs(database)
    body = MockDataRequest.model_validate(
        {"mock_data_configuration": {"dataset_name": "mnist", "number_of_partitions": 1,
                                     "data_tag": "mnist"}}
    )  # fmt: skip
    with database.session() as session:
        job_id = create_job(
            session=session, caller=Caller(ADMIN_CUSTOMER_ID, is_admin=True), body=body
        ).id
    jobs.accept(job_id)
    hub = access(url_of(silent), tmp_path / "hf")
    dataset = RequestedDataset(
        "mnist",
        lambda cancel: check_dataset(
            load_hub_dataset("ylecun/mnist", hub=hub, cancel=cancel), DatasetRequest("mnist")
        ),
        hub_repo="ylecun/mnist",
    )
    result: list[tuple[MockJobState, bool]] = []
    runner = threading.Thread(
        target=lambda: result.append(
            jobs.run(job_id, dataset=dataset, request=body, servers=None)  # type: ignore[arg-type]
        )
    )
    runner.start()
    connection, _ = silent.accept()  # the child is downloading
    connection.close()

    started = time.monotonic()
    state = jobs.delete(job_id)
    runner.join(10)
    took = time.monotonic() - started

    assert state is MockJobState.CANCELLED and result == [(MockJobState.CANCELLED, False)]
    assert took < 5
    database.close()


def test_a_load_that_takes_too_long_is_stopped(tmp_path: Path, silent: socket.socket) -> None:
    hub = access(url_of(silent), tmp_path / "hf", load_s=2)

    started = time.monotonic()
    with pytest.raises(HubUnavailableError, match=r"took longer than 2 s \(FLOPS_HUB_LOAD"):
        load_hub_dataset("ylecun/mnist", hub=hub, cancel=threading.Event())

    assert 2 <= time.monotonic() - started < 6


def test_a_hub_gone_during_the_load_is_unavailable(tmp_path: Path) -> None:
    hub = access(CLOSED_HUB_ENDPOINT, tmp_path / "hf")

    with pytest.raises(HubUnavailableError, match="could not load 'ylecun/mnist' from the hub"):
        load_hub_dataset("ylecun/mnist", hub=hub, cancel=threading.Event())


def test_a_repo_without_a_train_split_fails_saying_so(tmp_path: Path) -> None:
    write_image_dataset_repo(
        tmp_path / "repo", config_name="mnist", image_column="image", rows={"test": 10}
    )
    with FakeHub({"someone/test-only": tmp_path / "repo"}) as fake:
        hub = access(fake.url, tmp_path / "hf")

        with pytest.raises(HubDatasetError, match="train") as raised:
            load_hub_dataset("someone/test-only", hub=hub, cancel=threading.Event())

    assert not isinstance(raised.value, HubUnavailableError)


@pytest.mark.parametrize(
    ("name", "is_hub"),
    [
        ("mnist", True),
        ("cifar10", True),
        ("ylecun/mnist", True),
        ("teknium/OpenHermes-2.5", True),
        ("a/b/c", False),
        ("../mnist", False),
        ("/etc/passwd", False),
        ("my data", False),
        ("mnïst", False),
        ("a--b", False),
        ("a..b", False),
        ("", False),
    ],
)
def test_which_names_have_the_form_of_a_hub_id(name: str, is_hub: bool) -> None:
    assert is_hub_name(name) is is_hub


def test_the_original_names_are_todays_hub_repos() -> None:
    assert repo_id_of("mnist") == "ylecun/mnist"
    assert repo_id_of("cifar10") == "uoft-cs/cifar10"
    assert repo_id_of("someone/else") == "someone/else"
