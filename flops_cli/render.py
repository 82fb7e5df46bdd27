"""How the CLI shows projects: state colours, the list table, a project's page, its logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flops_cli.api_types import Event, LogsResponse, Project, ProjectSummary

__all__ = [
    "describe_event",
    "metrics_text",
    "print_events",
    "print_logs",
    "print_project",
    "print_summary",
    "project_table",
    "state_text",
    "training_result",
]

_STATE_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "training": "cyan",
    "building": "blue",
    "post_training": "cyan",
    "pending": "dim",
}
_SERVICE_FIELDS = ("name", "role", "status", "node", "exit_code", "service_id")


def state_text(state: str) -> str:
    """The state as rich markup in its colour."""
    return f"[{_STATE_STYLES.get(state, 'default')}]{escape(state)}[/]"


def training_result(project: Project) -> dict[str, Any]:
    """The `result.training` part of a project: best round, metrics, model (maybe empty)."""
    result = project.get("result") or {}
    training = result.get("training")
    return training if isinstance(training, dict) else {}


def print_summary(console: Console, project: Project, reason: str | None = None) -> None:
    """Print how a finished project ended: best metrics, model and MLflow URL, or the reason.

    Parameters
    ----------
    console : Console
        Where to print.
    project : Project
        The project as `GET /api/flops/projects/{id}` returns it.
    reason : str | None
        The message of its final state event, if known (else the project's message).
    """
    project_id, state = escape(project["id"]), project["state"]
    why = escape(reason or project.get("message") or "no reason given")
    took = _duration(project)
    if state == "completed":
        console.print(f"[green]✓ Project {project_id} completed[/]{took}", highlight=False)
        for line in _result_lines(project):
            console.print(line, highlight=False)
    elif state == "failed":
        console.print(f"[red]✗ Project {project_id} failed[/]{took}: {why}", highlight=False)
        console.print(f"The services' logs: flops project logs {project_id}", highlight=False)
    elif state == "cancelled":
        console.print(f"[yellow]Project {project_id} was cancelled[/]: {why}", highlight=False)
    else:
        console.print(f"Project {project_id} is {state_text(state)}", highlight=False)


def project_table(projects: list[ProjectSummary], width: int = 120) -> Table:
    """A table of projects, one row each, fitting `width` by shortening the repo and message.

    Parameters
    ----------
    projects : list[ProjectSummary]
        The projects, in the manager's order.
    width : int
        Columns available (the console's width); the message is left out below 10 columns.
    """
    headers = ["ID", "CUSTOMER", "STATE", "REPO", "COMMIT", "UPDATED", "MESSAGE"]
    rows = [
        [
            project["id"],
            project["customer_id"],
            project["state"],
            project["repo_url"],
            (project.get("commit") or "")[:8],
            _when(project.get("updated_at"), "%m-%d %H:%M"),
            (project.get("message") or "").partition("\n")[0],
        ]
        for project in projects
    ]
    widths = [
        max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)
    ]
    room = width - 2 * len(headers) - sum(w for i, w in enumerate(widths) if i not in (3, 6))
    repo_width = max(min(widths[3], room // 2), 12)
    message_width = room - repo_width
    if message_width < 10:
        headers.pop()
    table = Table(box=None, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=True, min_width=widths[0] if header == "ID" else None)
    for row in rows:
        cells = [
            escape(_shorten(row[3], repo_width)) if i == 3 else escape(c) for i, c in enumerate(row)
        ]
        cells[2] = state_text(row[2])
        cells[6] = escape(_shorten(row[6], message_width))
        table.add_row(*cells[: len(headers)])
    return table


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def print_project(console: Console, project: Project, events: list[Event]) -> None:
    """Print one project: its fields, result, services and the last few events."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    rows: list[tuple[str, str]] = [
        ("id", escape(project["id"])),
        ("state", state_text(project["state"])),
        ("message", escape(project.get("message") or "")),
        ("customer", escape(project["customer_id"])),
        ("repo", escape(project["repo_url"])),
        ("commit", escape(project.get("commit") or "not resolved yet")),
        ("created", escape(_when(project.get("created_at")))),
        ("updated", escape(_when(project.get("updated_at")))),
    ]
    for name, value in rows:
        fields.add_row(name, value)
    console.print(fields, highlight=False)
    for line in _result_lines(project):
        console.print(line, highlight=False)
    services = project.get("services") or []
    if services:
        console.print(f"[bold]services[/] ({len(services)})")
        for service in services:
            # Only these fields: a service's environment may hold the project's callback token.
            described = ", ".join(
                f"{key}={service[key]}" for key in _SERVICE_FIELDS if service.get(key) is not None
            )
            console.print(f"  {escape(described)}", highlight=False)
    if events:
        console.print("[bold]recent events[/]")
        print_events(console, events)


def print_events(console: Console, events: list[Event]) -> None:
    """Print events one a line: time, type (state changes in colour), source and message."""
    for event in events:
        kind = state_text(event["type"]) if event.get("kind") == "state" else escape(event["type"])
        source = f" [dim]{escape(event.get('source') or '')}[/]" if event.get("source") else ""
        message = escape(describe_event(event))
        console.print(f"  {_when(event.get('timestamp'))}  {kind}{source}  {message}")


def metrics_text(metrics: Any) -> str:
    """`accuracy 0.950  loss 0.210` from a round's metrics (what is known of the two)."""
    if not isinstance(metrics, dict):
        return ""
    return "  ".join(
        f"{name} {metrics[name]:.3f}"
        for name in ("accuracy", "loss")
        if isinstance(metrics.get(name), int | float)
    )


def describe_event(event: Event) -> str:
    """An event in words: its message, a round's metrics, or its plain data values."""
    data = event.get("data") or {}
    if event["type"] == "round_completed":
        return (
            f"round {data.get('round')}/{data.get('rounds')}  {metrics_text(data.get('metrics'))}"
        )
    if event.get("message"):
        return str(event.get("message"))
    plain = [(k, v) for k, v in data.items() if not isinstance(v, dict | list)]
    return ", ".join(f"{key}={value}" for key, value in plain[:6])


def print_logs(console: Console, logs: LogsResponse) -> None:
    """Print the last lines of each service under a heading naming it."""
    if not logs["services"]:
        console.print("No services have run for this project yet.")
    for service in logs["services"]:
        name = service.get("name")
        title = f"{service['role']} {name + ' ' if name else ''}({service['service_id']})"
        console.rule(escape(title), align="left")
        for line in service["lines"]:
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def _result_lines(project: Project) -> list[str]:
    training = training_result(project)
    lines = []
    metrics = training.get("metrics") or {}
    if training.get("best_round") is not None or metrics:
        values = ", ".join(
            f"{name} {metrics[name]:.4f}"
            for name in ("accuracy", "loss")
            if isinstance(metrics.get(name), int | float)
        )
        lines.append(f"Best round {training.get('best_round', '?')}: {values}")
    model = training.get("model")
    if isinstance(model, dict) and model.get("name"):
        alias = f" (@{model['alias']})" if model.get("alias") else ""
        lines.append(f"Registered model: {model['name']} version {model.get('version')}{alias}")
    tracking = (project.get("result") or {}).get("tracking_url")
    if tracking:
        lines.append(f"MLflow: {tracking}")
    return [escape(line) for line in lines]


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _when(value: Any, style: str = "%Y-%m-%d %H:%M:%S") -> str:
    moment = _parse(value)
    return moment.strftime(style) if moment else str(value or "")


def _duration(project: Project) -> str:
    start, end = _parse(project.get("created_at")), _parse(project.get("updated_at"))
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return ""
    return f" in {(end - start).total_seconds():.0f} s"
