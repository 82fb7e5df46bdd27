"""Show a project's events as they happen: a spinner while it builds, a bar over its rounds.

`WatchView` is fed one event at a time and only renders; `follow_events` gets the events
(the manager's Server-Sent Events stream, resumed after the last event id when the connection
drops, or polling where there is no stream); `watch_project` ties both together and prints
the final summary.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from flops_cli.api_types import FINAL_STATES, Event, Project
from flops_cli.client import ManagerClient, ManagerError
from flops_cli.render import describe_event, metrics_text, print_summary
from flops_core.closing import Closing

__all__ = ["WatchOutcome", "WatchView", "follow_events", "watch_project"]

_STATE_TEXT = {
    "pending": "Waiting to start",
    "building": "Building",
    "training": "Training",
    "post_training": "Registering the model",
}
_WARNINGS = {
    "dependency_override",
    "dependency_relaxed",
    "learner_failed",
    "learner_dropped",
    "failed",
    "warning",
}
#: Shown otherwise (the progress bars, the summary), or too chatty to print.
_QUIET = {"build_progress", "started", "learner_connected", "succeeded"}


@dataclass
class WatchOutcome:
    """How a watched project ended (or how far it got)."""

    project_id: str
    state: str | None = None
    reason: str | None = None
    rounds_completed: int = 0
    last_metrics: dict[str, Any] = field(default_factory=dict)
    project: Project | None = None

    @property
    def exit_code(self) -> int:
        """0 when the project completed, else 1."""
        return 0 if self.state == "completed" else 1


class WatchView(Closing):
    """Render a project's events on `console`; use as a context manager around `handle`.

    Parameters
    ----------
    console : Console
        Where to draw; lines printed for past events stay above the live bars.
    project_id : str
        The project, for the summary.
    rounds : int | None
        The configured rounds; else learnt from the first `round_completed` event.
    """

    def __init__(self, console: Console, project_id: str, *, rounds: int | None = None) -> None:
        self.console = console
        self.outcome = WatchOutcome(project_id=project_id)
        self._rounds = rounds
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the lines printed above the bars and the summary remain
        )
        self._prepare: TaskID = self._progress.add_task("Waiting to start", total=None, info="")
        self._training: TaskID | None = None

    def __enter__(self) -> Self:
        if self.console.is_terminal:  # elsewhere (logs, pipes) only the printed lines show
            self._progress.start()
        return self

    def close(self) -> None:
        """Stop the live bars; the lines printed above them stay."""
        if self._progress.live.is_started:
            self._progress.stop()

    def handle(self, event: Event) -> bool:
        """Show one event; return True when it is the project's final state.

        Parameters
        ----------
        event : Event
            An event of `GET /api/flops/projects/{id}/events` or its stream.
        """
        if event.get("kind") == "state":
            return self._state(event["type"], event.get("message") or "")
        data = event.get("data") or {}
        if event["type"] == "round_completed":
            self._round(data)
        elif event["type"] == "build_progress":
            self._info(self._prepare, event.get("message") or "")
        elif event["type"] == "learner_connected" and self._training is not None:
            self._info(self._training, f"learners connected: {data.get('connected', '?')}")
        elif event["type"] not in _QUIET:
            self._line(event, warn=event["type"] in _WARNINGS)
        return False

    def _state(self, state: str, message: str) -> bool:
        self.outcome.state = state
        if state in FINAL_STATES:  # the summary shows it, with the reason
            self.outcome.reason = message or None
            return True
        text = f"[bold]{escape(state)}[/]" + (f"  {escape(message)}" if message else "")
        self._progress.console.print(text, highlight=False)
        if state in ("pending", "building"):
            self._progress.update(self._prepare, description=_STATE_TEXT[state], info="")
        elif state == "training":
            self._finish(self._prepare, "Prepared")
            self._training_task()
        elif state == "post_training":
            if self._training is not None:
                self._finish(self._training, "Trained", keep_info=True)
            self._prepare = self._progress.add_task(_STATE_TEXT[state], total=None, info="")
        return False

    def _round(self, data: dict[str, Any]) -> None:
        task = self._training_task()
        current = int(data.get("round", 0))
        rounds = data.get("rounds") or self._rounds
        metrics = data.get("metrics") or {}
        self.outcome.rounds_completed = max(self.outcome.rounds_completed, current)
        self.outcome.last_metrics = dict(metrics)
        summary = metrics_text(metrics)
        self._progress.update(
            task, total=rounds, completed=current, info=f"round {current}/{rounds or '?'} {summary}"
        )
        took = data.get("duration_s")
        tail = f"  ({took:.2f} s)" if isinstance(took, int | float) else ""
        self._progress.console.print(
            f"round {current}/{rounds or '?'}  {summary}{tail}", highlight=False
        )

    def _training_task(self) -> TaskID:
        if self._training is None:
            self._finish(self._prepare, "Prepared")
            self._training = self._progress.add_task(
                "Training", total=self._rounds, info="waiting for learners"
            )
        return self._training

    def _finish(self, task: TaskID, description: str, *, keep_info: bool = False) -> None:
        self._progress.update(task, description=description, total=1, completed=1)
        if not keep_info:
            self._progress.update(task, info="")
        self._progress.stop_task(task)

    def _info(self, task: TaskID, text: str) -> None:
        self._progress.update(task, info=escape(text[:70]))

    def _line(self, event: Event, *, warn: bool) -> None:
        message = describe_event(event)
        source = event.get("source")
        origin = f" [dim]({escape(source)})[/]" if source else ""
        style = "yellow" if warn else "dim"
        self._progress.console.print(
            f"[{style}]{escape(event['type'])}[/]{origin}  {escape(message)}", highlight=False
        )


def follow_events(
    client: ManagerClient, project_id: str, *, poll_interval: float = 1.0, max_failures: int = 6
) -> Iterator[Event]:
    """Yield each of the project's events once, in order, until the project is final.

    The Server-Sent Events stream is used while it works; after a dropped connection or a
    quiet spell it is reopened (asking for the events after the last one seen, as
    `Last-Event-ID` and `?after=`) and events already yielded are skipped. Where the manager
    has no stream (404/405) the events are polled every `poll_interval`. The caller normally
    stops at the final state event; should that event never come, the iteration ends once
    the project itself is final and no events are left.

    Parameters
    ----------
    client : ManagerClient
        The manager.
    project_id : str
        The project.
    poll_interval : float
        Seconds between polls when polling.
    max_failures : int
        Consecutive failed attempts (with exponential backoff and jitter) before giving up.
    """
    seen: set[str] = set()
    last: int | str | None = None
    streaming, failures = True, 0
    while True:
        try:
            source = (
                client.stream_events(project_id, after=last)
                if streaming
                else iter(client.events(project_id, after=last))
            )
            fresh = False
            for event in source:
                key = str(event["id"])
                if key not in seen:
                    seen.add(key)
                    last, failures, fresh = event["id"], 0, True
                    yield event
            if not fresh and client.get_project(project_id)["state"] in FINAL_STATES:
                yield from (e for e in client.events(project_id) if str(e["id"]) not in seen)
                return
            time.sleep(poll_interval)
            continue
        except ManagerError as e:
            if streaming and e.status_code in (404, 405):
                streaming = False
                continue
            if e.status_code is not None and e.status_code not in (502, 503, 504):
                raise
            failures += 1
            if failures >= max_failures:
                raise
        time.sleep(min(10.0, 0.25 * 2**failures) * random.uniform(0.5, 1.0))


def watch_project(
    client: ManagerClient, project_id: str, console: Console, *, poll_interval: float = 1.0
) -> WatchOutcome:
    """Follow a project until it reaches a final state, then print its summary.

    Parameters
    ----------
    client : ManagerClient
        The manager.
    project_id : str
        The project to watch.
    console : Console
        Where to draw.
    poll_interval : float
        Seconds between polls, and before reopening a stream that ended early.

    Returns
    -------
    WatchOutcome
        The final state, reason and project; its `exit_code` is 0 only for `completed`.
    """
    project = client.get_project(project_id)
    with WatchView(console, project_id, rounds=configured_rounds(project)) as view:
        for event in follow_events(client, project_id, poll_interval=poll_interval):
            if view.handle(event):
                break
    view.outcome.project = client.get_project(project_id)
    if view.outcome.state not in FINAL_STATES:  # the final state event never came
        view.outcome.state = view.outcome.project["state"]
        view.outcome.reason = view.outcome.project.get("message")
    print_summary(console, view.outcome.project, view.outcome.reason)
    return view.outcome


def configured_rounds(project: Project) -> int | None:
    """The project's `training_rounds`, if its configuration says."""
    training = (project.get("config") or {}).get("training_configuration") or {}
    rounds = training.get("training_rounds")
    return rounds if isinstance(rounds, int) else None
