"""`flops nodes` and `flops node-token create|list|revoke` against a fake manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from typer.testing import CliRunner

from flops_cli.main import app
from flops_cli.node_commands import node_table
from flops_cli.ui import CliState
from tests.flops_cli.conftest import FakeManager

NODES = "/api/flops/nodes"
NODE_TOKENS = "/api/flops/node-tokens"
SECRET = "flops_n0de-t0ken-only-shown-once"

ADMIN_VIEW: list[dict[str, Any]] = [
    {
        "name": "node0", "cluster": "local", "platform": "linux/amd64", "state": "ready",
        "address": "127.0.0.1", "port": 11027, "data_server": "grpc://127.0.0.1:11027",
        "simulated": True, "last_seen": "2026-12-06T12:00:00+00:00", "version": "1.0",
        "tags": [{"tag": "acme:digits", "rows": 600}], "reads": {},
    },
    {
        "name": "worker-b1", "cluster": "edge-b", "platform": "linux/arm64", "state": "stale",
        "address": "10.0.1.2", "port": 11027, "data_server": "grpc://10.0.1.2:11027",
        "simulated": False, "last_seen": "2026-12-06T11:00:00+00:00", "version": "1.0",
        "tags": [], "reads": {},
    },
]  # fmt: skip
CUSTOMER_VIEW: list[dict[str, Any]] = [
    {
        "name": "node0", "cluster": "local", "platform": "linux/amd64", "state": "ready",
        "tags": [{"tag": "digits", "rows": 600}, {"tag": "shared:wine", "rows": 178}],
    }
]  # fmt: skip


def run(manager: FakeManager, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["--token", "t0ken", *args],
        obj=CliState(url="http://m.test", transport=manager.transport),
    )
    return result.exit_code, result.stdout, result.stderr


def test_nodes_shows_an_admin_where_each_node_is_and_when_it_reported() -> None:
    # Execute
    table = node_table(ADMIN_VIEW, now=datetime(2026, 12, 6, 12, 0, 12, tzinfo=UTC))
    # Assert
    assert [c.header for c in table.columns] == [
        "NAME", "CLUSTER", "PLATFORM", "STATE", "DATA SERVER", "LAST SEEN", "TAGS (ROWS)",
    ]  # fmt: skip
    rows = [list(row) for row in zip(*(column.cells for column in table.columns), strict=True)]
    assert rows[0] == [
        "node0 [dim](simulated)[/]", "local", "linux/amd64", "[green]ready[/]",
        "grpc://127.0.0.1:11027", "12 s ago", "acme:digits (600)",
    ]  # fmt: skip
    assert rows[1][3:6] == ["[yellow]stale[/]", "grpc://10.0.1.2:11027", "60 min ago"]


def test_nodes_shows_a_customer_the_nodes_and_its_tags() -> None:
    # Prepare
    fake = FakeManager({("GET", NODES): httpx.Response(200, json=CUSTOMER_VIEW)})
    # Execute
    code, out, _ = run(fake, "nodes")
    # Assert
    assert code == 0, out
    assert "node0" in out and "ready" in out and "linux/amd64" in out
    assert "digits (600), shared:wine (178)" in out
    assert "DATA SERVER" not in out and "LAST SEEN" not in out


def test_nodes_without_any_says_how_a_node_registers() -> None:
    fake = FakeManager({("GET", NODES): httpx.Response(200, json=[])})

    code, out, _ = run(fake, "nodes")

    assert code == 0
    assert "flops node-token create NODE" in out


def test_node_token_create_prints_the_token_alone_on_stdout() -> None:
    # Prepare
    created = {"id": 4, "node": "worker-a1", "label": "rack 3", "token": SECRET,
               "created_at": "2026-12-06T12:00:00+00:00"}  # fmt: skip
    fake = FakeManager({("POST", NODE_TOKENS): httpx.Response(201, json=created)})
    # Execute
    code, out, err = run(fake, "node-token", "create", "worker-a1", "--label", "rack 3")
    # Assert
    assert code == 0, err
    assert out == SECRET + "\n"
    assert fake.bodies(NODE_TOKENS) == [{"node": "worker-a1", "label": "rack 3"}]
    assert "Node token 4 for node worker-a1" in err and "FLOPS_NODE_TOKEN" in err
    assert SECRET not in err


def test_node_token_list_shows_ids_nodes_and_revocations() -> None:
    # Prepare
    listed = [
        {"id": 1, "node": "node0", "label": "embedded", "simulated": True,
         "created_at": "2026-12-06T12:00:00+00:00", "revoked_at": "2026-12-06T13:00:00+00:00"},
        {"id": 2, "node": "worker-a1", "label": "", "simulated": False,
         "created_at": "2026-12-06T12:05:00+00:00", "revoked_at": None},
    ]  # fmt: skip
    fake = FakeManager({("GET", NODE_TOKENS): httpx.Response(200, json=listed)})
    # Execute
    code, out, _ = run(fake, "node-token", "list", "--all")
    # Assert
    assert code == 0, out
    assert fake.requests[0].url.params["include_revoked"] == "true"
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["1", "node0", "embedded"] and "2026-12-06 13:00" in lines[1]
    assert lines[2].split()[:2] == ["2", "worker-a1"] and lines[2].rstrip().endswith("-")


def test_node_token_revoke_deletes_it() -> None:
    fake = FakeManager({("DELETE", f"{NODE_TOKENS}/3"): httpx.Response(204)})

    code, out, _ = run(fake, "node-token", "revoke", "3")

    assert code == 0, out
    assert out.strip() == "Node token 3 revoked."
    assert [r.method for r in fake.requests] == ["DELETE"]


def test_a_customer_token_gets_the_managers_refusal() -> None:
    fake = FakeManager(
        {("GET", NODE_TOKENS): httpx.Response(403, json={"detail": "this needs an admin token"})}
    )

    code, _, err = run(fake, "node-token", "list")

    assert code == 1
    assert "403: this needs an admin token" in err


def test_last_seen_reads_as_time_ago() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    nodes = [
        {**ADMIN_VIEW[0], "last_seen": (now - timedelta(seconds=s)).isoformat()}
        for s in (3, 600, 3 * 3600, 3 * 86400)
    ]

    table = node_table(nodes, now=now)

    assert list(table.columns[5].cells) == ["3 s ago", "10 min ago", "3 h ago", "2026-12-03 12:00"]
