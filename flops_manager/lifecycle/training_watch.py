"""Watching a project's FL services: until they run, and until the top aggregator's outcome.

The events the services report and their orchestrator status are both watched, so that a
crashed process is noticed even when it reports nothing. A failure ends the project
(`ProjectFailure`) with the reasons users need: the aggregator's, the cluster aggregators'
in hierarchical FL, and the learners' own last output.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flops_core.errors import FlopsError
from flops_manager.lifecycle.learner_shortfall import LearnerGroup, LearnerShortfall
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.orchestrators import Orchestrator, ServiceState, ServiceStatus

__all__ = ["ProjectFailure", "TrainingWatch", "exit_message"]

_POLL_S = 0.5
#: Seconds an aggregator that reported `succeeded` gets to deliver its last events and exit.
_EXIT_GRACE_S = 20.0


class ProjectFailure(FlopsError):
    """Raised to end a project as `failed` while it trains; the message is the reason users see."""


@dataclass
class TrainingWatch:
    """Follows one project's services for its runner."""

    orchestrator: Orchestrator
    store: ProjectStore
    events: queue.Queue[dict[str, Any]]
    check_cancelled: Callable[[], None]
    schedule_timeout_s: float = 300.0
    confirm_outcome: Callable[[], dict[str, Any] | None] | None = None
    """Asked when the top aggregator exits with code 0 without an outcome event: the
    `succeeded` data another record (MLflow) confirms, or `None`."""
    exit_grace_s: float = _EXIT_GRACE_S
    _learner_failures: dict[str, str] = field(default_factory=dict)
    _learner_reasons: dict[str, str] = field(default_factory=dict)
    _cluster_failures: dict[str, str] = field(default_factory=dict)

    def wait_started(self, service_id: str, what: str) -> ServiceState:
        """Wait until a remote service runs (or has already finished); fail if it cannot."""
        orchestrator = self.orchestrator
        deadline = time.monotonic() + self.schedule_timeout_s
        while True:
            self.check_cancelled()
            state = orchestrator.status(service_id)
            if state.status in (ServiceStatus.RUNNING, ServiceStatus.COMPLETED):
                return state
            if state.status.terminal:
                lines = [line for line in orchestrator.logs(service_id, tail=5) if line.strip()]
                output = " | ".join(line.strip() for line in lines if line.strip() != state.message)
                raise ProjectFailure(
                    f"the {orchestrator.kind} orchestrator could not start the "
                    f"{what}: {state.message}" + (f"; last output: {output}" if output else "")
                )
            if time.monotonic() > deadline:
                raise ProjectFailure(
                    f"the {orchestrator.kind} orchestrator did not start the {what} "
                    f"within {self.schedule_timeout_s:.0f} s ({state.message})"
                )
            time.sleep(0.2)

    def follow(
        self, aggregator: str, learners: list[str], clusters: list[str] | None = None,
        groups: Sequence[LearnerGroup] = (),
    ) -> dict[str, Any]:  # fmt: skip
        """Wait for the aggregator's outcome, watching the processes as well as the events.

        `learners` are the services below the top aggregator: the learners and, in
        hierarchical mode, the cluster aggregators, whose own `failed` reasons (source
        `cluster:<name>`) explain a root's failure best. `groups` say how many learners each
        aggregator needs: once too few are left, the project fails within seconds instead of
        when the aggregator's connect timeout ends.
        """
        orchestrator = self.orchestrator
        shortfall = LearnerShortfall(groups)
        while True:
            self.check_cancelled()
            try:
                event = self.events.get(timeout=_POLL_S)
            except queue.Empty:
                event = None
            source = self._note_failure(event)
            shortfall.note(event)
            if event is not None and source == "aggregator":
                if event["type"] == "succeeded":
                    self._await_exit(aggregator)
                    return dict(event.get("data", {}))
                if event["type"] == "failed":
                    reason = f"training failed: {event['data'].get('reason', '')}"
                    self._await_cluster_outcomes(clusters or [])
                    self._await_learner_reasons(learners)
                    if self._cluster_failures:
                        reason += "; clusters: " + "; ".join(self._cluster_failures.values())
                    raise ProjectFailure(reason + self._learner_summary(learners))
            statuses: dict[str, ServiceStatus] = {}
            nodes: dict[str, str | None] = {}
            for service_id in learners:
                state = orchestrator.status(service_id)
                statuses[service_id], nodes[service_id] = state.status, self._node_of(state)
                if (
                    state.status is ServiceStatus.FAILED
                    and service_id not in self._learner_failures
                ):
                    lines = orchestrator.logs(service_id, tail=5)
                    message = exit_message(self._named(state), state.exit_code, lines)
                    self._learner_failures[service_id] = message
                    self.store.event(f"{state.role}_failed", message)
            lost = shortfall.reason(statuses, nodes)
            if lost is not None and self.events.empty():
                self._await_learner_reasons([s for s in learners if statuses[s].terminal])
                reason = f"training failed: {lost}"
                if self._cluster_failures:
                    reason += "; clusters: " + "; ".join(self._cluster_failures.values())
                raise ProjectFailure(reason + self._learner_summary(learners))
            state = orchestrator.status(aggregator)
            if state.status.terminal and self.events.empty():
                time.sleep(1.0)  # its last event may still be on its way
                if self.events.empty():
                    if state.exit_code == 0 and self.confirm_outcome is not None:
                        confirmed = self.confirm_outcome()
                        if confirmed is not None:
                            return confirmed
                    lines = orchestrator.logs(aggregator, tail=8)
                    raise ProjectFailure(
                        "the aggregator stopped without reporting an outcome: "
                        + exit_message("aggregator", state.exit_code, lines)
                    )

    def _node_of(self, state: ServiceState) -> str | None:
        """The node a service runs on, where services may run on other hosts and it is known
        (on this machine every service shares one node, and naming it says nothing)."""
        return state.node if self.orchestrator.capabilities.services_on_other_hosts else None

    def _named(self, state: ServiceState) -> str:
        """A service by its name, and its node (`_node_of`) where that is known."""
        node = self._node_of(state)
        return f"{state.name} on node {node}" if node else state.name

    def _await_exit(self, service_id: str) -> None:
        """Let an aggregator that reported its outcome finish sending events and exit by itself.

        Stopping it at once would cut its last events off (and signal it while it closes).
        """
        deadline = time.monotonic() + self.exit_grace_s
        while time.monotonic() < deadline:
            self.check_cancelled()
            if self.orchestrator.status(service_id).status.terminal:
                return
            time.sleep(0.2)

    def _note_failure(self, event: dict[str, Any] | None) -> str:
        """Keep the reason of a cluster aggregator's or learner's `failed` event; its source."""
        source = str(event.get("source", "")) if event is not None else ""
        if event is None or event["type"] != "failed":
            return source
        reason = str(event.get("data", {}).get("reason", ""))
        if source.startswith("cluster:"):
            self._cluster_failures[source] = reason
        elif source.startswith("learner:"):
            self._learner_reasons[source.removeprefix("learner:")] = reason
        return source

    def _next_event(self) -> dict[str, Any] | None:
        try:
            return self.events.get(timeout=0.2)
        except queue.Empty:
            return None

    def _await_cluster_outcomes(self, clusters: list[str], seconds: float = 10.0) -> None:
        """Give failing cluster aggregators a moment to report why (it explains the root)."""
        deadline = time.monotonic() + seconds
        while clusters and time.monotonic() < deadline:
            self._note_failure(self._next_event())
            ended = all(self.orchestrator.status(c).status.terminal for c in clusters)
            if ended and self.events.empty():
                return

    def _await_learner_reasons(self, learners: list[str], seconds: float = 5.0) -> None:
        """Give learners a moment to say why they failed.

        A learner's error ends the round, and the aggregator often reports that round as
        failed before the learners' own `failed` events arrive; a learner reports before it
        exits, so once all have ended their events are here.
        """
        deadline = time.monotonic() + seconds
        while learners and time.monotonic() < deadline:
            self._note_failure(self._next_event())
            if all(self.orchestrator.status(s).status.terminal for s in learners):
                break
        while not self.events.empty():
            self._note_failure(self.events.get_nowait())

    def _learner_summary(self, learners: list[str]) -> str:
        """The learners' own reasons, which usually explain an aggregator's failure."""
        for service_id in learners:
            state = self.orchestrator.status(service_id)
            if state.status is ServiceStatus.FAILED and service_id not in self._learner_failures:
                lines = self.orchestrator.logs(service_id, tail=5)
                self._learner_failures[service_id] = exit_message(
                    self._named(state), state.exit_code, lines
                )
        by_reason: dict[str, list[str]] = {}
        for name, reason in sorted(self._learner_reasons.items()):
            by_reason.setdefault(reason, []).append(name)
        reported = [f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()]
        # A learner's exit output repeats the reason it reported; say each reason once.
        exits = [
            message for message in self._learner_failures.values()
            if not any(reason and reason in message for reason in self._learner_reasons.values())
        ]  # fmt: skip
        if not reported and not exits:
            return ""
        return "; learners: " + "; ".join(reported + exits)


def exit_message(name: str, exit_code: int | None, lines: list[str]) -> str:
    """`<name> ended with exit code N; last output: ...`, for reasons users read."""
    code = "unknown exit code" if exit_code is None else f"exit code {exit_code}"
    tail = " | ".join(line.strip() for line in lines if line.strip())
    return f"{name} ended with {code}" + (f"; last output: {tail}" if tail else "")
