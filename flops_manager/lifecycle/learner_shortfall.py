"""Noticing that an aggregator can no longer get the learners it waits for.

An aggregator waits up to its connect timeout (300 s by default) for `min_available_clients`
learners before the first round, and for `min_fit_clients` in every round after. When the
learners have already exited with an error, that wait cannot end well: the manager sees their
processes fail and ends the project within seconds instead, with the learners' own reasons.

A learner that exits with code 0 (the aggregator ended its training) still counts as there:
only failed or stopped learners are lost. The aggregator gets a short grace to report its own
outcome first, because its reason (a failed round, say) explains the end best: 3 s while it
waits for learners to connect (it would notice nothing before its connect timeout), 10 s once
training runs (a round in progress notices lost learners at once and fails by itself).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flops_manager.orchestrators import ServiceStatus

__all__ = ["LearnerGroup", "LearnerShortfall", "hierarchy_groups"]

#: Statuses of a learner that will not train again.
_LOST = frozenset({ServiceStatus.FAILED, ServiceStatus.STOPPED})


@dataclass
class LearnerGroup:
    """The learners one aggregator trains with, and how many of them it needs.

    Parameters
    ----------
    source : str
        The event source of their aggregator: `aggregator`, or `cluster:<name>`.
    learners : list[str]
        The learners' service ids.
    min_available : int
        Learners the aggregator waits for before its first round.
    min_fit : int
        Learners each round needs once training has started.
    noun : str
        What one of them is called in messages: `learner`, `cluster aggregator`.
    where : str
        Said after the noun, e.g. ` of cluster edgeA`.
    """

    source: str
    learners: list[str]
    min_available: int
    min_fit: int
    noun: str = "learner"
    where: str = ""
    started: bool = field(default=False, init=False)

    @property
    def needed(self) -> tuple[int, str]:
        """How many learners the aggregator needs now, and the setting that says so."""
        if self.started:
            return self.min_fit, "min_fit_clients"
        return self.min_available, "min_available_clients"


@dataclass
class LearnerShortfall:
    """Tells when too few learners are left for any aggregator, after `grace_s` seconds.

    Parameters
    ----------
    groups : Sequence[LearnerGroup]
        Every aggregator's learners.
    grace_s : float
        How long a shortfall must last before it is the reason, while the aggregator waits
        for learners to connect; meanwhile it may report its own outcome.
    started_grace_s : float
        The same once training runs.
    """

    groups: Sequence[LearnerGroup]
    grace_s: float = 3.0
    started_grace_s: float = 10.0
    _since: float | None = field(default=None, init=False)

    def note(self, event: dict[str, Any] | None) -> None:
        """Follow training's progress: a group has started once its first round can run."""
        if event is None:
            return
        data = event.get("data") or {}
        for group in self.groups:
            if group.started or event.get("source") != group.source:
                continue
            connected = data.get("connected")
            if event.get("type") == "round_completed" or (
                event.get("type") == "learner_connected"
                and isinstance(connected, int)
                and connected >= group.min_available
            ):
                group.started = True

    def reason(
        self, statuses: Mapping[str, ServiceStatus], nodes: Mapping[str, str | None] | None = None
    ) -> str | None:
        """Why training cannot go on, once that has been so for `grace_s`; else None.

        Parameters
        ----------
        statuses : Mapping[str, ServiceStatus]
            The current status of each learner (a missing one counts as running).
        nodes : Mapping[str, str | None] | None
            The node each learner runs on, where the orchestrator knows it; the reason names
            the nodes of the learners that were lost.
        """
        short = [(g, r) for g in self.groups if (r := self._group_reason(g, statuses, nodes))]
        if not short:
            self._since = None
            return None
        group, reason = short[0]
        now = time.monotonic()
        if self._since is None:
            self._since = now
        grace = self.started_grace_s if group.started else self.grace_s
        return reason if now - self._since >= grace else None

    @staticmethod
    def _group_reason(
        group: LearnerGroup, statuses: Mapping[str, ServiceStatus],
        nodes: Mapping[str, str | None] | None = None,
    ) -> str | None:  # fmt: skip
        left = [s for s in group.learners if statuses.get(s) not in _LOST]
        needed, setting = group.needed
        if len(left) >= needed:
            return None
        total, what = len(group.learners), f"{group.noun}s{group.where}"
        lost = [s for s in group.learners if s not in left]
        on = _on_nodes([(nodes or {}).get(s) for s in lost])
        if not left:
            return (
                f"all {total} {what} exited before training ended{on}"
                if total > 1
                else f"the {group.noun}{group.where} exited before training ended{on}"
            )
        return (
            f"{total - len(left)} of {total} {what} exited before training ended{on}; "
            f"the {len(left)} left are fewer than the {needed} needed ({setting})"
        )


def _on_nodes(nodes: list[str | None]) -> str:
    """` (on node w2)`, ` (on nodes w1, w2)` for the known ones; empty when none is known."""
    known = list(dict.fromkeys(n for n in nodes if n))
    if not known:
        return ""
    return f" (on node{'s' if len(known) > 1 else ''} {', '.join(known)})"


def hierarchy_groups(
    cluster_aggregators: list[str], members: dict[str, list[str]], min_available: int,
    min_fit: int,
) -> list[LearnerGroup]:  # fmt: skip
    """The groups of hierarchical FL: the root's cluster aggregators, and each cluster's learners.

    Parameters
    ----------
    cluster_aggregators : list[str]
        Service ids of the cluster aggregators; the root needs every one of them.
    members : dict[str, list[str]]
        Each cluster's learners' service ids, by cluster name.
    min_available, min_fit : int
        The project's minimums; a cluster with fewer learners needs all of them.
    """
    total = len(cluster_aggregators)
    groups = [LearnerGroup("aggregator", cluster_aggregators, total, total, "cluster aggregator")]
    for name, learners in members.items():
        size = len(learners)
        groups.append(
            LearnerGroup(
                f"cluster:{name}",
                learners,
                min(min_available, size),
                min(min_fit, size),
                where=f" of cluster {name}",
            )
        )
    return groups
