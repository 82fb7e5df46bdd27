"""`flops project create|list|show|logs|cancel|watch`: FL projects on the manager."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flops_cli.render import print_logs, print_project, project_table
from flops_cli.ui import console, err_console, manager_errors, state_of
from flops_cli.watch import watch_project
from flops_core.cli_options import cli_app
from flops_core.vocabulary import MLFlavor

__all__ = ["parse_data_tags", "parse_strategy_params", "project_app", "project_body"]

project_app = cli_app(
    "Create, follow and cancel federated-learning projects.", no_args_is_help=True
)

ProjectId = Annotated[str, typer.Argument(help="The project's id.", show_default=False)]


def parse_data_tags(value: str) -> list[str]:
    """Split "a, b" into ["a", "b"]; at least one tag is needed."""
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    if not tags:
        raise typer.BadParameter("give at least one data tag, e.g. --data-tags digits")
    return tags


def parse_strategy_params(value: str | None) -> dict[str, Any]:
    """Parse `--strategy-params` as a JSON object ({} when not given)."""
    if value is None:
        return {}
    try:
        params = json.loads(value)
    except json.JSONDecodeError as e:
        example = '{"proximal_mu": 0.1}'
        raise typer.BadParameter(f"not valid JSON ({e.msg}), e.g. '{example}'") from e
    if not isinstance(params, dict):
        raise typer.BadParameter("must be a JSON object, e.g. '{\"proximal_mu\": 0.1}'")
    return params


def project_body(
    *,
    repo_url: str,
    flavor: str,
    data_tags: list[str],
    customer_id: str,
    ref: str | None = None,
    rounds: int = 3,
    learners: int | None = None,
    min_available_clients: int | None = None,
    min_fit_clients: int | None = None,
    min_evaluate_clients: int | None = None,
    strategy: str = "FedAvg",
    strategy_params: dict[str, Any] | None = None,
    cycles: int | None = None,
) -> dict[str, Any]:
    """Build the FLOps-compatible body of `POST /api/flops/projects` from the options.

    Minimum client counts not given follow the options above them: available clients
    default to `learners`, fit and evaluate clients to available clients; counts still
    unknown are left to the manager's defaults.

    Parameters
    ----------
    repo_url, flavor, data_tags, customer_id, ref
        The repo, its ML flavor, the data tags to train on, the owner, the branch/tag/commit.
    rounds, learners, min_available_clients, min_fit_clients, min_evaluate_clients
        Training rounds and learner counts.
    strategy, strategy_params
        The Flower strategy and its own parameters.
    cycles
        Hierarchical FL: root rounds, each running `rounds` in every cluster; `None` is
        classic FL.
    """
    available = min_available_clients or learners
    counts = {
        "learners": learners,
        "min_available_clients": available,
        "min_fit_clients": min_fit_clients or available,
        "min_evaluate_clients": min_evaluate_clients or available,
    }
    training: dict[str, Any] = {
        "data_tags": data_tags,
        "training_rounds": rounds,
        **{name: count for name, count in counts.items() if count is not None},
        "strategy": strategy,
        "strategy_params": strategy_params or {},
    }
    if cycles is not None:
        training |= {"mode": "hierarchical", "training_cycles": cycles}
    body: dict[str, Any] = {
        "customerID": customer_id,
        "ml_repo_url": repo_url,
        "ml_model_flavor": flavor,
        "training_configuration": training,
    }
    if ref:
        body["ml_repo_ref"] = ref
    return body


@project_app.command()
def create(
    ctx: typer.Context,
    repo_url: Annotated[
        str, typer.Argument(help="Git URL of the ML repo (https, ssh; file:// if allowed).")
    ],
    flavor: Annotated[MLFlavor, typer.Option(help="The repo's ML library.")],
    data_tags: Annotated[
        str, typer.Option(help="Comma-separated tags of the learners' data, e.g. digits.")
    ],
    ref: Annotated[str | None, typer.Option(help="Branch, tag or commit (default HEAD).")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Training rounds.")] = 3,
    learners: Annotated[
        int | None, typer.Option(min=1, help="Learners to deploy (default: min available).")
    ] = None,
    min_available_clients: Annotated[
        int | None, typer.Option(min=1, help="Learners needed to start (default: --learners).")
    ] = None,
    min_fit_clients: Annotated[
        int | None, typer.Option(min=1, help="Learners training each round (default: available).")
    ] = None,
    min_evaluate_clients: Annotated[
        int | None, typer.Option(min=1, help="Learners evaluating (default: available).")
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="Flower strategy (FedAvg, FedProx, ...).")
    ] = "FedAvg",
    strategy_params: Annotated[
        str | None, typer.Option(help='The strategy\'s parameters as JSON, e.g. {"eta": 0.05}.')
    ] = None,
    cycles: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Hierarchical FL: root rounds, each running --rounds in every cluster "
            "(clusters come from the orchestrator or the manager's FLOPS_CLUSTERS).",
        ),
    ] = None,
    customer_id: Annotated[
        str | None, typer.Option(help="Owner of the project (default: the token's customer).")
    ] = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="Follow it to the end; exit 1 unless it completes."),
    ] = False,
) -> None:
    """Create a project from an ML repo and print its id."""
    tags = parse_data_tags(data_tags)
    params = parse_strategy_params(strategy_params)
    with manager_errors(), state_of(ctx).client() as client:
        owner = customer_id or client.whoami()["customer_id"]
        body = project_body(
            repo_url=repo_url, flavor=flavor.value, data_tags=tags, customer_id=owner, ref=ref,
            rounds=rounds, learners=learners, min_available_clients=min_available_clients,
            min_fit_clients=min_fit_clients, min_evaluate_clients=min_evaluate_clients,
            strategy=strategy, strategy_params=params, cycles=cycles,
        )  # fmt: skip
        created = client.create_project(body)
        console.print(created["id"], highlight=False)
        if not watch:
            err_console.print(f"Follow it with: flops project watch {created['id']}")
            return
        outcome = watch_project(client, created["id"], err_console)
    raise typer.Exit(outcome.exit_code)


@project_app.command("list")
def list_projects(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None, typer.Option(help="Only projects in this state (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Newest projects shown.")] = 50,
) -> None:
    """List the projects the token may see, newest first."""
    with manager_errors(), state_of(ctx).client() as client:
        projects, total = client.list_projects(states=state, limit=limit)
    if not projects:
        console.print("No projects yet: create one with `flops project create`.")
        return
    console.print(project_table(projects, width=console.width))
    if total > len(projects):
        console.print(f"(the newest {len(projects)} of {total}; --limit shows more)")


@project_app.command()
def show(
    ctx: typer.Context,
    project_id: ProjectId,
    events: Annotated[int, typer.Option(min=0, help="How many recent events to show.")] = 10,
) -> None:
    """Show a project: state, commit, best metrics, model, tracking URL and recent events."""
    with manager_errors(), state_of(ctx).client() as client:
        project = client.get_project(project_id)
        recent = client.events(project_id)[-events:] if events else []
    print_project(console, project, recent)


@project_app.command()
def logs(
    ctx: typer.Context,
    project_id: ProjectId,
    tail: Annotated[int, typer.Option(min=1, help="Lines per service.")] = 50,
) -> None:
    """Print the last lines of each of the project's services."""
    with manager_errors(), state_of(ctx).client() as client:
        print_logs(console, client.logs(project_id, tail=tail))


@project_app.command()
def cancel(ctx: typer.Context, project_id: ProjectId) -> None:
    """Cancel a project: everything it started is stopped."""
    with manager_errors(), state_of(ctx).client() as client:
        answer = client.cancel_project(project_id)
    console.print(f"Project {answer.get('id', project_id)}: {answer.get('state', 'cancelled')}")


@project_app.command()
def watch(ctx: typer.Context, project_id: ProjectId) -> None:
    """Follow a project until it ends; exit 0 if it completed, else 1."""
    try:
        with manager_errors(), state_of(ctx).client() as client:
            outcome = watch_project(client, project_id, console)
    except KeyboardInterrupt:
        err_console.print(f"Stopped watching; project {project_id} goes on.", highlight=False)
        raise typer.Exit(130) from None
    raise typer.Exit(outcome.exit_code)
