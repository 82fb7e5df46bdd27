"""The `flops` command: a thin client of the FLOps manager's REST API, and `flops demo`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flops_cli.client import DEFAULT_URL
from flops_cli.demo import run_demo
from flops_cli.node_commands import node_token_app, nodes
from flops_cli.project_commands import project_app
from flops_cli.server import server
from flops_cli.ui import CliState, console, err_console, manager_errors, resolve_token, state_of
from flops_core.cli_options import cli_app

__all__ = ["app"]

app = cli_app(
    "FLOps: federated learning from an ML Git repo. Talks to a FLOps manager.",
    no_args_is_help=True,
)


class Partitioning(StrEnum):
    """How `flops mock-data` splits a dataset."""

    IID = "iid"
    DIRICHLET = "dirichlet"


token_app = cli_app("API tokens (admin).", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(token_app, name="token")
app.add_typer(node_token_app, name="node-token")
app.command()(server)
app.command()(nodes)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="FLOPS_URL", help="The manager's URL.")] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FLOPS_TOKEN",
            show_default=False,
            show_envvar=True,
            help="API token (default: FLOPS_ADMIN_TOKEN, else the file "
            "<FLOPS_DATA_DIR or ~/.flops>/admin-token that `flops server` writes).",
        ),
    ] = None,
) -> None:
    """FLOps: federated learning from an ML Git repo."""
    # A transport given by the caller (`app(obj=CliState(...))`, tests) is kept.
    transport = ctx.obj.transport if isinstance(ctx.obj, CliState) else None
    ctx.obj = CliState(url=url, token=resolve_token(token), transport=transport)


@token_app.command("create")
def create_token(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="The customer the token is for.")],
    label: Annotated[str, typer.Option(help="A note: who or what uses the token.")] = "",
    admin: Annotated[bool, typer.Option(help="Grant admin rights.")] = False,
) -> None:
    """Create an API token and print it: the only time it is shown."""
    with manager_errors(), state_of(ctx).client() as client:
        created = client.create_token(customer_id, label=label, admin=admin)
    err_console.print(
        f"Token {created['id']} for {created['customer_id']}; store it now, the manager keeps "
        "only its hash:",
        highlight=False,
    )
    console.print(created["token"], markup=False, highlight=False, soft_wrap=True)


@app.command("mock-data")
def mock_data(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            help="digits, iris, wine or breast_cancer (bundled with scikit-learn), or a Hugging "
            "Face hub dataset (mnist, cifar10, owner/name) where the manager reaches the hub."
        ),
    ] = "digits",
    file: Annotated[
        str | None,
        typer.Option(
            help="Instead of --dataset: a .parquet or .csv file in the manager's datasets "
            "directory (FLOPS_DATASETS_DIR), as a path relative to it."
        ),
    ] = None,
    partitions: Annotated[int, typer.Option(min=1, help="Parts, spread over the nodes.")] = 3,
    tag: Annotated[
        str,
        typer.Option(
            help="Data tag to store the parts under, in the owner's namespace (only the "
            "owner's projects read it); `shared:TAG` (admin only) for every project."
        ),
    ] = "digits",
    partitioning: Annotated[
        Partitioning, typer.Option(help="iid, or dirichlet: non-IID label mixes (needs --alpha).")
    ] = Partitioning.IID,
    alpha: Annotated[
        float | None,
        typer.Option(help="Dirichlet concentration > 0: 0.1 very skewed, 100 nearly IID."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split.")] = 0,
    label_column: Annotated[
        str | None, typer.Option(help="Column with the labels (default: label).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Return when the data is on the data servers.")] = True,
    customer_id: Annotated[
        str | None, typer.Option(help="Customer (default: the token's customer).")
    ] = None,
) -> None:
    """Push a dataset, split into partitions, to the learner nodes' data servers."""
    if partitioning is Partitioning.DIRICHLET and alpha is None:
        raise typer.BadParameter("--partitioning dirichlet needs --alpha", param_hint="--alpha")
    if partitioning is Partitioning.IID and alpha is not None:
        raise typer.BadParameter("--alpha is for --partitioning dirichlet", param_hint="--alpha")
    how: dict[str, object] = {"kind": partitioning.value, "seed": seed}
    if alpha is not None:
        how["alpha"] = alpha
    name = file or dataset
    with manager_errors(), state_of(ctx).client() as client:
        owner = customer_id or client.whoami()["customer_id"]
        result = client.create_mock_data(
            dataset=name,
            partitions=partitions,
            tag=tag,
            customer_id=owner,
            partitioning=None if how == {"kind": "iid", "seed": 0} else how,
            label_column=label_column,
            wait=wait,
        )
    job = f"job {result['id']} " if "id" in result else ""
    if result.get("state", "completed") != "completed":
        console.print(f"Mock-data {job}{result.get('state')}: {result.get('url')}", highlight=False)
        return
    measure = result.get("measure") or {}
    skew = f"; label skew {measure['value']}" if measure.get("value") is not None else ""
    stored = f"stored as {result['stored_data_tag']}; " if result.get("stored_data_tag") else ""
    console.print(
        f"Pushed {len(result['partitions'])} partitions of {name} under tag "
        f"{result['data_tag']} ({stored}{job.strip() or 'done'}{skew})",
        highlight=False,
    )
    for partition in result["partitions"]:
        described = (
            ", ".join(f"{k}={v}" for k, v in partition.items())
            if isinstance(partition, dict)
            else str(partition)
        )
        console.print(f"  {described}", markup=False, highlight=False)


@app.command()
def tracking(ctx: typer.Context) -> None:
    """Print the URL of the MLflow tracking server."""
    with manager_errors(), state_of(ctx).client() as client:
        console.print(client.tracking(), highlight=False, soft_wrap=True)


@app.command()
def demo(
    rounds: Annotated[int, typer.Option(min=1, help="Training rounds.")] = 5,
    learners: Annotated[int, typer.Option(min=1, max=32, help="Learners (and data parts).")] = 3,
    keep: Annotated[
        bool, typer.Option(help="Keep the manager (and MLflow) running until Ctrl-C.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The manager's data directory (default: a new temporary one)."),
    ] = None,
) -> None:
    """Run a complete FL project on this machine: manager, MLflow, data, learners, rounds.

    Starts its own manager (free ports, a temporary data directory), pushes digits to the
    learner nodes, trains examples/sklearn-digits and prints the accuracy, the registered
    model and the MLflow URL. Needs nothing running beforehand; --url and --token are unused.
    """
    raise typer.Exit(run_demo(rounds=rounds, learners=learners, keep=keep, data_dir=data_dir))
