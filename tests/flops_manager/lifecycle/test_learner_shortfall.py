"""When too few learners are left for an aggregator, and when a learner's exit is harmless."""

from __future__ import annotations

from flops_manager.lifecycle.learner_shortfall import (
    LearnerGroup,
    LearnerShortfall,
    hierarchy_groups,
)
from flops_manager.orchestrators import ServiceStatus

RUNNING, FAILED, COMPLETED = ServiceStatus.RUNNING, ServiceStatus.FAILED, ServiceStatus.COMPLETED
LEARNERS = ["l0", "l1", "l2"]


def _watch(min_available: int = 3, min_fit: int = 2) -> LearnerShortfall:
    return LearnerShortfall([LearnerGroup("aggregator", LEARNERS, min_available, min_fit)], 0.0)


def test_all_learners_failed_is_the_reason() -> None:
    # Execute
    reason = _watch().reason({"l0": FAILED, "l1": FAILED, "l2": FAILED})

    # Assert
    assert reason == "all 3 learners exited before training ended"


def test_learners_that_ended_training_normally_are_no_shortfall() -> None:
    # Execute: exit code 0 is how a learner ends when the aggregator has finished
    reason = _watch().reason({"l0": COMPLETED, "l1": COMPLETED, "l2": COMPLETED})

    # Assert
    assert reason is None


def test_before_the_first_round_every_available_learner_is_needed() -> None:
    # Prepare
    watch = _watch(min_available=3, min_fit=2)
    statuses = {"l0": RUNNING, "l1": FAILED, "l2": RUNNING}

    # Execute
    before = watch.reason(statuses)
    watch.note({"source": "aggregator", "type": "learner_connected", "data": {"connected": 3}})
    after = watch.reason(statuses)

    # Assert: 2 left cannot start training (3 needed) but can go on with it (2 per round)
    assert before == (
        "1 of 3 learners exited before training ended; the 2 left are fewer than the 3 needed "
        "(min_available_clients)"
    )
    assert after is None


def test_a_shortfall_is_the_reason_only_after_the_grace() -> None:
    # Prepare
    watch = LearnerShortfall([LearnerGroup("aggregator", LEARNERS, 1, 1)], grace_s=3600)

    # Execute
    reason = watch.reason({"l0": FAILED, "l1": FAILED, "l2": FAILED})

    # Assert: the aggregator gets its chance to report first
    assert reason is None


def test_a_cluster_that_lost_its_learner_is_named() -> None:
    # Prepare
    groups = hierarchy_groups(["c0", "c1"], {"edgeA": ["l0"], "edgeB": ["l1", "l2"]}, 3, 3)
    watch = LearnerShortfall(groups, grace_s=0.0)

    # Execute
    reason = watch.reason({"c0": RUNNING, "c1": RUNNING, "l0": FAILED, "l1": RUNNING})

    # Assert
    assert reason == "the learner of cluster edgeA exited before training ended"


def test_the_reason_names_the_nodes_of_the_lost_learners_where_they_are_known() -> None:
    # Prepare
    nodes = {"l0": "w1", "l1": "w2", "l2": None}

    # Execute
    one = _watch().reason({"l0": RUNNING, "l1": FAILED, "l2": RUNNING}, nodes)
    every = _watch().reason({"l0": FAILED, "l1": FAILED, "l2": FAILED}, nodes)
    unknown = _watch().reason({"l0": RUNNING, "l1": RUNNING, "l2": FAILED}, nodes)

    # Assert
    assert one is not None and one.startswith("1 of 3 learners exited before training ended "
                                              "(on node w2); the 2 left")  # fmt: skip
    assert every == "all 3 learners exited before training ended (on nodes w1, w2)"
    assert unknown is not None and "(on node" not in unknown
