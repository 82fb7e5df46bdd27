"""Data-tag namespaces: a customer's tags are stored apart from every other customer's.

The last tests put data of several customers on a real data server and load it the way a
learner does (`configure_data_source` with the tags the manager gives it, then
`load_dataset()`), to show that a project reads its owner's data and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pytest

from flops_data_server import MLDataServer
from flops_manager.core.data_tags import (
    DataTagError,
    check_data_tag,
    customer_data_tag,
    customer_namespace,
    stored_data_tag,
    stored_data_tags,
)
from flops_utils.ml_data_client import MLDataClient, NoDataForTagsError
from flops_utils.ml_repo_building_blocks import (
    clear_data_source,
    configure_data_source,
    load_dataset,
)

# Customer ids as `check_customer_id` allows them: letters, digits and `_.@-`.
CUSTOMERS = ["acme", "Acme", "acme.eu", "acme%2Eeu", "acme-eu", "acme_eu", "a@b.c", "Admin",
             "shared", "a" * 128, "a" * 127 + "b", "." * 30 + "x", "." * 31]  # fmt: skip


def test_a_customers_tag_is_stored_in_its_namespace() -> None:
    assert stored_data_tag("acme", "digits") == "acme:digits"
    assert stored_data_tag("Admin", "digits") == "Admin:digits"
    assert stored_data_tag("acme.eu", "digits") == "acme%2Eeu:digits"
    assert stored_data_tags("acme", ["digits", "wine"]) == ["acme:digits", "acme:wine"]


def test_shared_tags_are_the_plain_operator_tags_for_every_customer() -> None:
    assert stored_data_tag("acme", "shared:digits") == "digits"
    assert stored_data_tag("carol", "shared:digits") == "digits"


@pytest.mark.parametrize(
    "forged",
    [
        "carol:digits",  # another customer's namespace, named directly
        "shared:carol:digits",  # ... through the shared namespace
        "../carol:digits",
        "digits.carol",  # the data server splits names at the first '.'
        "digits,carol:digits",  # learners once took comma-separated tags
        "digits/x",
        "digits\\x",
        "digits\x00",
        "shared:",
        "shared:shared:digits",
        "",
        "digits ",
        "dígits",
        "a" * 129,
    ],
)
def test_tags_that_could_reach_other_data_are_refused(forged: str) -> None:
    with pytest.raises(DataTagError, match="letters, digits"):
        stored_data_tag("acme", forged)
    with pytest.raises(DataTagError):
        check_data_tag(forged)


def test_distinct_customers_never_share_a_stored_tag() -> None:
    stored = {(c, t): stored_data_tag(c, t) for c in CUSTOMERS for t in ("digits", "x-y", "a_b")}

    assert len(set(stored.values())) == len(stored)
    for customer in CUSTOMERS:
        namespace = customer_namespace(customer)
        assert not set(namespace) & set(":./\\,\x00"), namespace
        assert len(namespace) <= 73
    # A stored tag has one ':', so its owner is read off before it; shared tags have none.
    for (customer, _), tag in stored.items():
        assert tag.split(":")[0] == customer_namespace(customer)
    assert ":" not in stored_data_tag("acme", "shared:digits")


def test_namespaces_of_long_ids_stay_distinct_and_fit_a_file_name() -> None:
    long_ids = ["a" * 128, "a" * 127 + "b", "a" * 64 + "." * 64]

    namespaces = [customer_namespace(c) for c in long_ids]

    assert all(a != b for a, b in combinations(namespaces, 2))
    # `<stored tag>.<32 hex>.parquet` stays under the 255 bytes of a file name.
    longest = stored_data_tag("a" * 64 + "." * 64, "t" * 128)
    assert len(f"{longest}.{'0' * 32}.parquet".encode()) <= 255


def test_an_empty_owner_is_refused() -> None:
    with pytest.raises(DataTagError, match="customer id"):
        stored_data_tag("", "digits")
    with pytest.raises(DataTagError, match="list"):
        stored_data_tags("acme", "digits")


def test_a_stored_tag_reads_back_as_its_customer_wrote_it() -> None:
    # Prepare
    written = [(c, t) for c in CUSTOMERS for t in ("digits", "x-y", "shared:digits")]
    # Execute
    read_back = [customer_data_tag(c, stored_data_tag(c, t)) for c, t in written]
    # Assert
    assert read_back == [t for _, t in written]


@pytest.mark.parametrize(
    "stored",
    ["carol:digits", "acme%2Eeu:digits", "acme:carol:digits", "digits.x", "di gits", "acme:"],
)
def test_other_customers_and_unnameable_tags_read_back_as_none(stored: str) -> None:
    assert customer_data_tag("acme", stored) is None


@pytest.fixture
def data_server(tmp_path: Path) -> Iterator[str]:
    server = MLDataServer(tmp_path / "node", host="127.0.0.1", port=0)
    yield f"grpc://127.0.0.1:{server.port}"
    server.shutdown()
    clear_data_source()


def _table(name: str, rows: int) -> pa.Table:
    return pa.table({"owner": [name] * rows, "x": list(range(rows))})


def _load(address: str, customer: str, tags: list[str]) -> dict[str, int]:
    """Rows per owner that a learner of `customer`'s project with `tags` loads."""
    configure_data_source(address, stored_data_tags(customer, tags))
    owners = load_dataset().data.table.column("owner").to_pylist()
    return {owner: owners.count(owner) for owner in sorted(set(owners))}


def test_a_learner_loads_its_owners_data_and_nothing_else(data_server: str) -> None:
    # Prepare: the node holds data of two customers, the operator and near-miss tags.
    with MLDataClient(data_server) as client:
        client.push_table("acme:digits", _table("acme", 3))
        client.push_table("acme:digits", _table("acme", 2))
        client.push_table("carol:digits", _table("carol", 7))
        client.push_table("digits", _table("operator", 11))
        client.push_table("acme:digits2", _table("acme-digits2", 13))
        client.push_table("acme%2Eeu:digits", _table("acme.eu", 17))
        client.push_table("acm:digits", _table("acm", 19))

    # Execute / Assert
    assert _load(data_server, "acme", ["digits"]) == {"acme": 5}
    assert _load(data_server, "carol", ["digits"]) == {"carol": 7}
    assert _load(data_server, "acme.eu", ["digits"]) == {"acme.eu": 17}
    assert _load(data_server, "acme", ["shared:digits"]) == {"operator": 11}
    assert _load(data_server, "acme", ["digits", "shared:digits"]) == {"acme": 5, "operator": 11}


def test_a_customer_without_data_finds_none_of_the_others(data_server: str) -> None:
    with MLDataClient(data_server) as client:
        client.push_table("carol:digits", _table("carol", 7))
        client.push_table("digits", _table("operator", 11))

    configure_data_source(data_server, stored_data_tags("acme", ["digits"]))
    with pytest.raises(NoDataForTagsError, match="acme:digits"):
        load_dataset()
