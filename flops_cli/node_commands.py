"""`flops nodes` and `flops node-token create|list|revoke`: the learner nodes and their tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flops_cli.api_types import NodeInfo, NodeTokenInfo
from flops_cli.ui import console, err_console, manager_errors, state_of
from flops_core.cli_options import cli_app

__all__ = ["node_table", "node_token_app", "node_token_table", "nodes"]

node_token_app = cli_app(
    "Node tokens (admin): each lets one learner node's data server register itself.",
    no_args_is_help=True,
)

_STATE_STYLES = {"ready": "green", "stale": "yellow"}


def nodes(ctx: typer.Context) -> None:
    """List the learner nodes: cluster, platform, state and the data tags each holds.

    Admins also see each node's data server address and when it last reported.
    """
    with manager_errors(), state_of(ctx).client() as client:
        listed = client.list_nodes()
    if not listed:
        console.print(
            "No learner nodes have registered. A node registers when its data server starts "
            "with the manager's URL and a node token (`flops node-token create NODE`).",
            highlight=False,
        )
        return
    console.print(node_table(listed, now=datetime.now(UTC)))


def node_table(listed: list[NodeInfo], *, now: datetime) -> Table:
    """A table of nodes, one row each; address and last-seen columns when the admin's view.

    Parameters
    ----------
    listed : list[NodeInfo]
        The nodes as `GET /api/flops/nodes` returns them.
    now : datetime
        The time to tell how long ago each node reported (UTC).
    """
    admin = any("address" in node for node in listed)
    headers = ["NAME", "CLUSTER", "PLATFORM", "STATE"]
    headers += ["DATA SERVER", "LAST SEEN"] if admin else []
    table = Table(box=None, header_style="bold")
    for header in [*headers, "TAGS (ROWS)"]:
        table.add_column(header, no_wrap=header != "TAGS (ROWS)")
    for node in listed:
        name = escape(node["name"])
        if node.get("simulated"):
            name += " [dim](simulated)[/]"
        state = node["state"]
        cells = [
            name,
            escape(node["cluster"]),
            escape(node["platform"]),
            f"[{_STATE_STYLES.get(state, 'default')}]{escape(state)}[/]",
        ]
        if admin:
            cells += [escape(node.get("data_server", "")), _ago(node.get("last_seen"), now)]
        tags = ", ".join(f"{tag['tag']} ({tag['rows']})" for tag in node["tags"])
        table.add_row(*cells, escape(tags) or "[dim]none[/]")
    return table


def _ago(value: str | None, now: datetime) -> str:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return str(value or "")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = max((now - moment).total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return moment.strftime("%Y-%m-%d %H:%M")


@node_token_app.command("create")
def create_node_token(
    ctx: typer.Context,
    node: Annotated[
        str,
        typer.Argument(
            help="The node's name (its Oakestra node name): the data server reports under it.",
            show_default=False,
        ),
    ],
    label: Annotated[str, typer.Option(help="A note: where the node stands.")] = "",
) -> None:
    """Create a node token and print it: the only time it is shown."""
    with manager_errors(), state_of(ctx).client() as client:
        created = client.create_node_token(node, label=label)
    err_console.print(
        f"Node token {created['id']} for node {escape(created['node'])}; store it now, the "
        "manager keeps only its hash. Give it to the node's data server (environment "
        "FLOPS_NODE_TOKEN or --node-token-file), started with --node-name "
        f"{escape(created['node'])} and --manager-url:",
        highlight=False,
    )
    console.print(created["token"], markup=False, highlight=False, soft_wrap=True)


@node_token_app.command("list")
def list_node_tokens(
    ctx: typer.Context,
    include_revoked: Annotated[
        bool, typer.Option("--all", help="List revoked tokens too.")
    ] = False,
) -> None:
    """List the node tokens (never the tokens themselves)."""
    with manager_errors(), state_of(ctx).client() as client:
        tokens = client.list_node_tokens(include_revoked=include_revoked)
    if not tokens:
        console.print("No node tokens: create one with `flops node-token create NODE`.")
        return
    console.print(node_token_table(tokens))


def node_token_table(tokens: list[NodeTokenInfo]) -> Table:
    """A table of node tokens: id, node, label, created and revoked (time), simulated or not."""
    table = Table(box=None, header_style="bold")
    for header in ("ID", "NODE", "LABEL", "CREATED", "REVOKED"):
        table.add_column(header, no_wrap=header != "LABEL")
    for token in tokens:
        label = escape(token["label"])
        if token.get("simulated"):
            label = f"{label} [dim](simulated)[/]".strip()
        table.add_row(
            str(token["id"]),
            escape(token["node"]),
            label,
            _when(token["created_at"]),
            _when(token.get("revoked_at")) or "-",
        )
    return table


def _when(value: str | None) -> str:
    try:
        return datetime.fromisoformat(value or "").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value or "")


@node_token_app.command("revoke")
def revoke_node_token(
    ctx: typer.Context,
    token_id: Annotated[
        int, typer.Argument(min=0, help="The token's id (`flops node-token list`).")
    ],
) -> None:
    """Revoke a node token: its node's reports are refused from now on, and it turns stale."""
    with manager_errors(), state_of(ctx).client() as client:
        client.revoke_node_token(token_id)
    console.print(f"Node token {token_id} revoked.", highlight=False)
