"""The node registry: node tokens register only their own node, refreshes, staleness, simulated
nodes of the embedded default, and tokens that appear nowhere but in the creator's hands."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect

from flops_core.api_tokens import hash_token
from flops_manager.db import Base, Database, Node
from flops_manager.services import nodes
from flops_manager.services.nodes import (
    InvalidNodeNameError,
    NodeReport,
    NodeTokenInvalidError,
    NodeTokenNotFoundError,
    NodeTokenOtherNodeError,
    RegisteredNode,
)
from flops_manager.services.tokens import create_token

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'flops.db'}")
    yield db
    db.close()


def report(**changes: Any) -> NodeReport:
    fields: dict[str, Any] = {
        "cluster": "edge-a",
        "platform": "linux/arm64",
        "address": "10.0.0.2",
        "port": 11027,
        "tags": {"acme:digits": 600, "digits": 1797},
        "reads": {"10.0.0.2": 3},
        "version": "1.2.3",
    }
    return NodeReport(**{**fields, **changes})


def issue(database: Database, node: str, **options: Any) -> str:
    with database.session() as session:
        return nodes.create_node_token(session=session, node=node, **options).token


def send(database: Database, token: str, name: str, **options: Any) -> RegisteredNode:
    with database.session() as session:
        return nodes.record_report(session=session, token=token, name=name, **options)


def listed(database: Database, *, now: datetime, stale_after_s: float = 45.0) -> list[Any]:
    with database.session() as session:
        return nodes.list_nodes(session=session, stale_after_s=stale_after_s, now=now)


def test_a_node_registers_with_its_token_and_is_listed(database: Database) -> None:
    # Prepare
    token = issue(database, "worker-a1", label="rack 3")
    # Execute
    returned = send(database, token, "worker-a1", report=report(), now=T0)
    [node] = listed(database, now=T0 + timedelta(seconds=1))
    # Assert
    assert node == returned
    assert (node.name, node.cluster, node.platform, node.address, node.port) == (
        "worker-a1", "edge-a", "linux/arm64", "10.0.0.2", 11027,
    )  # fmt: skip
    assert node.tags == {"acme:digits": 600, "digits": 1797}
    assert node.reads == {"10.0.0.2": 3}
    assert (node.simulated, node.stale, node.last_seen) == (False, False, T0)
    assert node.data_server_url == "grpc://10.0.0.2:11027"
    assert node.rows_for(["acme:digits", "digits", "acme:digits", "carol:digits"]) == 2397


def test_a_refresh_replaces_the_report_and_keeps_one_entry(database: Database) -> None:
    # Prepare
    token = issue(database, "worker-a1")
    send(database, token, "worker-a1", report=report(), now=T0)
    # Execute
    send(
        database, token, "worker-a1",
        report=report(address="fd00::2", port=12000, tags={"wine": 5}, reads={}),
        now=T0 + timedelta(seconds=15),
    )  # fmt: skip
    nodes_now = listed(database, now=T0 + timedelta(seconds=20))
    # Assert
    [node] = nodes_now
    assert node.tags == {"wine": 5}
    assert node.reads == {}
    assert node.last_seen == T0 + timedelta(seconds=15)
    assert node.data_server_url == "grpc://[fd00::2]:12000"
    with database.session() as session:
        row = session.get(Node, "worker-a1")
        assert row is not None
        assert row.registered_at.replace(tzinfo=UTC) == T0


def test_a_node_is_stale_once_not_heard_from_for_the_stale_time(database: Database) -> None:
    # Prepare
    token = issue(database, "worker-a1")
    send(database, token, "worker-a1", report=report(), now=T0)
    # Execute
    fresh = listed(database, now=T0 + timedelta(seconds=45))
    stale = listed(database, now=T0 + timedelta(seconds=45.5))
    stale_sooner = listed(database, now=T0 + timedelta(seconds=11), stale_after_s=10)
    # Assert
    assert [n.stale for n in fresh + stale + stale_sooner] == [False, True, True]


def test_nodes_are_listed_by_name(database: Database) -> None:
    # Prepare
    for name in ("b", "c", "a"):
        send(database, issue(database, name), name, report=report(), now=T0)
    # Execute
    names = [n.name for n in listed(database, now=T0)]
    # Assert
    assert names == ["a", "b", "c"]


def test_a_token_registers_only_its_own_node(database: Database) -> None:
    # Prepare
    token = issue(database, "worker-a1")
    # Execute
    with pytest.raises(NodeTokenOtherNodeError) as caught:
        send(database, token, "worker-b1", report=report())
    # Assert
    assert str(caught.value) == "this node token belongs to node worker-a1, not worker-b1"
    assert listed(database, now=T0) == []


def test_revoked_unknown_and_api_tokens_register_nothing(database: Database) -> None:
    # Prepare
    token = issue(database, "worker-a1")
    with database.session() as session:
        [record] = nodes.list_node_tokens(session=session)
        revoked_at = nodes.revoke_node_token(session=session, token_id=record.id)
        api_token = create_token(session=session, customer_id="acme", is_admin=True).token
    # Execute
    refused = []
    for candidate in (token, api_token, "flops_unknown", ""):
        with pytest.raises(NodeTokenInvalidError) as caught:
            send(database, candidate, "worker-a1", report=report())
        refused.append(str(caught.value))
    # Assert
    assert all("invalid or revoked node token" in message for message in refused)
    assert listed(database, now=T0) == []
    with database.session() as session:
        assert nodes.list_node_tokens(session=session) == []
        [listed_revoked] = nodes.list_node_tokens(session=session, include_revoked=True)
        again = nodes.revoke_node_token(session=session, token_id=record.id)
    assert listed_revoked.revoked_at is not None
    assert again == revoked_at


def test_revoking_an_unknown_token_names_its_id(database: Database) -> None:
    with database.session() as session, pytest.raises(NodeTokenNotFoundError) as caught:
        nodes.revoke_node_token(session=session, token_id=99)
    assert str(caught.value) == "node token 99 not found"


@pytest.mark.parametrize("name", ["", "-a", "a/b", "a b", "a" * 64, "ä"])
def test_a_node_name_outside_the_pattern_is_refused(database: Database, name: str) -> None:
    with database.session() as session, pytest.raises(InvalidNodeNameError, match="node name"):
        nodes.create_node_token(session=session, node=name)


def test_tokens_are_stored_hashed_and_never_logged(
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    monkeypatch.setattr(logging.getLogger("flops"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="flops")
    # Execute
    token = issue(database, "worker-a1")
    other = issue(database, "worker-b1")
    send(database, token, "worker-a1", report=report())
    with pytest.raises(NodeTokenOtherNodeError):
        send(database, other, "worker-a1", report=report())
    with database.session() as session:
        simulated = nodes.issue_simulated_node_tokens(session=session, names=["node0"])
    # Assert
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("flops.db*"))  # with the WAL
    assert hash_token(token).encode() in raw
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "node worker-a1 registered" in logged
    for secret in (token, other, simulated["node0"]):
        assert secret.encode() not in raw
        assert secret not in logged
        assert hash_token(secret) not in logged


def test_simulated_tokens_replace_the_previous_starts(database: Database) -> None:
    # Prepare: a previous start with three simulated nodes, and a real node
    with database.session() as session:
        before = nodes.issue_simulated_node_tokens(
            session=session, names=["node0", "node1", "node2"]
        )
    for name, token in before.items():
        send(database, token, name, report=report(cluster="local", address="127.0.0.1"), now=T0)
    real = issue(database, "worker-a1")
    send(database, real, "worker-a1", report=report(), now=T0)
    # Execute: this start has two
    with database.session() as session:
        after = nodes.issue_simulated_node_tokens(session=session, names=["node0", "node1"])
    # Assert
    assert set(after) == {"node0", "node1"}
    assert set(after.values()).isdisjoint(before.values())
    with pytest.raises(NodeTokenInvalidError):
        send(database, before["node0"], "node0", report=report())
    registered = send(database, after["node0"], "node0", report=report(cluster="local"), now=T0)
    assert registered.simulated is True
    listed_now = {n.name: n.simulated for n in listed(database, now=T0)}
    assert listed_now == {"node0": True, "node1": True, "worker-a1": False}
    send(database, real, "worker-a1", report=report())  # the admin's token still works
    with database.session() as session:
        valid = {(t.node, t.simulated) for t in nodes.list_node_tokens(session=session)}
    assert valid == {("node0", True), ("node1", True), ("worker-a1", False)}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("address", "10.0.0.2:11027"),
        ("address", "grpc://10.0.0.2"),
        ("address", "a b"),
        ("address", ""),
        ("platform", "arm64"),
        ("platform", "Linux/AMD64"),
        ("cluster", ""),
        ("cluster", "a" * 65),
        ("cluster", "edge a"),
        ("port", 0),
        ("port", 65536),
        ("tags", {"digits": -1}),
        ("tags", {"": 1}),
        ("reads", {"10.0.0.3": -1}),
        ("extra", "field"),
    ],
)
def test_a_report_outside_its_schema_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        report(**{field: value})
    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("address", ["10.0.0.2", "fd00::2", "worker-a1.edge.example", "node_1"])
def test_ip_addresses_and_dns_names_are_reachable_addresses(address: str) -> None:
    assert report(address=address).address == address


def test_a_database_of_an_older_manager_gets_the_node_tables(tmp_path: Path) -> None:
    # Prepare: the tables of a manager from before nodes existed
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    old = [t for t in Base.metadata.sorted_tables if t.name not in {"nodes", "node_tokens"}]
    Base.metadata.create_all(engine, tables=old)
    assert "nodes" not in inspect(engine).get_table_names()
    engine.dispose()
    # Execute
    database = Database(url)
    try:
        send(database, issue(database, "worker-a1"), "worker-a1", report=report(), now=T0)
        # Assert
        assert [n.name for n in listed(database, now=T0)] == ["worker-a1"]
    finally:
        database.close()


def test_a_concurrent_first_report_of_the_same_node_is_not_an_error(database: Database) -> None:
    # Prepare: another request added the node between this one's lookup and its insert
    token = issue(database, "worker-a1")
    send(database, token, "worker-a1", report=report(), now=T0)
    # Execute
    with database.session() as session:
        inserted = nodes._insert(session, name="worker-a1", at=T0)
        still_usable = session.get(Node, "worker-a1")
    # Assert
    assert inserted is None
    assert still_usable is not None and still_usable.cluster == "edge-a"
