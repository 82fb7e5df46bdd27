"""Data-aware placement: which registered node each learner of a project runs on.

On a backend that `places_on_nodes`, a learner runs on a node that holds the project's data
and reads only that node's data server. The rule, a pure function of the registered nodes
and the project's body:

- a node is *eligible* when it is fresh (not stale), holds rows for at least one of the
  project's stored data tags, and its platform (OS and architecture; a variant such as
  `/v8` is ignored) is one of `supported_platforms`;
- by default every eligible node gets one learner; `training_configuration.learners` may ask
  for fewer (the first nodes by name), never for more: that is an error naming how many nodes
  hold the tags, and which of them were skipped and why; so is a `min_available_clients`
  larger than the learners chosen;
- a learner that `learner_platforms` gives a platform goes to the first unused eligible node
  of that platform; the others take the remaining nodes by name;
- learner `i` runs the image of its node's platform (as `supported_platforms` spells it).

The same rule is checked when a project is posted (a 422 naming the field) and applied again
right before anything is deployed, with the nodes as they are then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flops_core.errors import PermanentError
from flops_manager.core.data_tags import stored_data_tags
from flops_manager.schemas import ProjectCreate
from flops_manager.services.nodes import RegisteredNode

__all__ = ["LearnerPlacement", "NodePlacementError", "NodePlan", "place_learners"]


class NodePlacementError(PermanentError, ValueError):
    """Raised when the registered nodes cannot take the project's learners; `loc` is the
    body field to change (e.g. `("training_configuration", "learners")`)."""

    def __init__(self, message: str, loc: tuple[str, ...]) -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class LearnerPlacement:
    """One learner and the node it runs on."""

    index: int
    node: RegisteredNode
    platform: str
    """The learner's image platform, as `supported_platforms` spells the node's."""

    @property
    def name(self) -> str:
        """The learner's name in events: `learner<index>`."""
        return f"learner{self.index}"


@dataclass(frozen=True)
class NodePlan:
    """The learners of a project on their nodes, and the nodes left out."""

    learners: list[LearnerPlacement]
    """In learner order: `learners[i].index == i`."""
    skipped: dict[str, str]
    """Nodes holding the project's data that get no learner, and why (stale, platform)."""

    @property
    def clusters(self) -> list[str]:
        """The clusters of the chosen nodes, in order of first appearance."""
        return list(dict.fromkeys(p.node.cluster for p in self.learners))

    def learners_of(self, cluster: str) -> list[int]:
        """Indexes of the learners placed in `cluster`."""
        return [p.index for p in self.learners if p.node.cluster == cluster]

    def event_data(self) -> dict[str, dict[str, str]]:
        """The `learners_placed` event's data: `{"learners": {"learner0": "w1", ...}}`."""
        return {"learners": {p.name: p.node.name for p in self.learners}}

    def describe(self) -> str:
        """The `learners_placed` event's message, e.g. `learner0 on w1 (edgeA), ...`."""
        placed = ", ".join(f"{p.name} on {p.node.name} ({p.node.cluster})" for p in self.learners)
        skipped = "; ".join(f"{name}: {why}" for name, why in self.skipped.items())
        return placed + (f"; skipped {skipped}" if skipped else "")


def place_learners(nodes: Sequence[RegisteredNode], body: ProjectCreate) -> NodePlan:
    """Choose the node of each learner of the project `body` (the rule in the module doc).

    Parameters
    ----------
    nodes : Sequence[RegisteredNode]
        The registered nodes, stale ones too (`list_nodes`); their order does not matter.
    body : ProjectCreate
        The project, its `customer_id` already the owner (its data tags are read in the
        owner's namespace).

    Raises
    ------
    NodePlacementError
        No node can take a learner, fewer than `learners` or `min_available_clients` can, or
        a `learner_platforms` entry has no node left; the message says how many hold the tags
        and why the others were skipped.
    """
    config = body.training_configuration
    stored = stored_data_tags(body.customer_id, config.data_tags)
    tags = ", ".join(config.data_tags)
    supported = {_os_arch(p): p for p in body.supported_platforms}
    holders = sorted((n for n in nodes if n.rows_for(stored) > 0), key=lambda n: n.name)
    skipped = {n.name: why for n in holders if (why := _unfit(n, supported))}
    eligible = [n for n in holders if n.name not in skipped]
    one = len(holders) == 1
    held = f"{len(holders)} registered node{'' if one else 's'} hold{'s' if one else ''} data"
    why_not = "; ".join(f"{name}: {why}" for name, why in skipped.items())
    if not eligible:
        if not holders:
            raise NodePlacementError(
                f"no registered node holds data for data_tags {tags}: push the data to the "
                "nodes' data servers first (POST /api/flops/mocks, or flops-data-server push on "
                "a node); GET /api/flops/nodes shows the tags each node holds",
                ("training_configuration", "data_tags"),
            )
        raise NodePlacementError(
            f"{held} for data_tags {tags}, but none can take a learner ({why_not})",
            ("training_configuration", "data_tags"),
        )
    names = ", ".join(n.name for n in eligible)
    can_take = f"{len(eligible)} can take one ({names})" + (
        f"; skipped {why_not}" if why_not else ""
    )
    count = config.learners or len(eligible)
    if count > len(eligible):
        raise NodePlacementError(
            f"training_configuration.learners asks for {count} learners, one per node, but "
            f"{held} for data_tags {tags} and {can_take}",
            ("training_configuration", "learners"),
        )
    if config.min_available_clients > count:
        raise NodePlacementError(
            f"training_configuration.min_available_clients is {config.min_available_clients}, "
            f"but {held} for data_tags {tags} and only {can_take}: one learner per "
            "node",
            ("training_configuration", "min_available_clients"),
        )
    chosen = _assign(eligible, count, body, supported)
    placements = [
        LearnerPlacement(i, node, supported[_os_arch(node.platform)])
        for i, node in enumerate(chosen)
    ]
    return NodePlan(placements, skipped)


def _assign(
    eligible: list[RegisteredNode], count: int, body: ProjectCreate, supported: Mapping[str, str]
) -> list[RegisteredNode]:
    """The node of each of `count` learners: listed platforms first, then by name."""
    listed = (body.learner_platforms or [])[:count]
    chosen: dict[int, RegisteredNode] = {}
    used: set[str] = set()
    for i, platform in enumerate(listed):
        node = next(
            (n for n in eligible
             if n.name not in used and _os_arch(n.platform) == _os_arch(platform)),
            None,
        )  # fmt: skip
        if node is None:
            of_platform = [n.name for n in eligible if _os_arch(n.platform) == _os_arch(platform)]
            raise NodePlacementError(
                f"learner_platforms[{i}] is {platform}, but no eligible node of that platform "
                f"is left for it (eligible {platform} nodes: {', '.join(of_platform) or 'none'})",
                ("learner_platforms",),
            )
        chosen[i] = node
        used.add(node.name)
    rest = iter(n for n in eligible if n.name not in used)
    return [chosen[i] if i in chosen else next(rest) for i in range(count)]


def _unfit(node: RegisteredNode, supported: Mapping[str, str]) -> str | None:
    """Why a node holding the data gets no learner, or `None`."""
    if node.stale:
        seen = node.last_seen.strftime("%Y-%m-%d %H:%M:%S")
        return f"stale (last report {seen} UTC)"
    if _os_arch(node.platform) not in supported:
        return f"platform {node.platform} is not in supported_platforms ({', '.join(supported)})"
    return None


def _os_arch(platform: str) -> str:
    """`linux/arm64` of `linux/arm64/v8`: what an image must match."""
    return "/".join(platform.split("/")[:2])
