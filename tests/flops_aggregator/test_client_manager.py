"""Waiting for learners is bounded, and a learner lost during training is recorded."""

from __future__ import annotations

import threading
import time

import pytest
from flwr.server.client_proxy import ClientProxy

from flops_aggregator.client_manager import FlopsClientManager
from flops_aggregator.errors import NotEnoughLearnersError


class _Learner(ClientProxy):
    """A connected learner as the client manager sees it (it never gets instructions here)."""

    def get_properties(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    get_parameters = fit = evaluate = reconnect = get_properties


def test_too_few_learners_fails_after_the_connect_timeout() -> None:
    # Prepare
    manager = FlopsClientManager(connect_timeout=0.3)
    manager.register(_Learner("a"))

    # Execute
    started = time.monotonic()
    with pytest.raises(NotEnoughLearnersError) as error:
        manager.sample(num_clients=2, min_num_clients=3)

    # Assert
    assert time.monotonic() - started < 2
    assert "only 1 of the 3 learners needed" in str(error.value)


def test_sampling_waits_for_a_late_learner() -> None:
    # Prepare
    manager = FlopsClientManager(connect_timeout=5)
    manager.register(_Learner("a"))
    threading.Timer(0.2, manager.register, args=(_Learner("b"),)).start()

    # Execute
    chosen = manager.sample(num_clients=2, min_num_clients=2)

    # Assert
    assert sorted(c.cid for c in chosen) == ["a", "b"]


def test_after_training_starts_only_the_fit_clients_are_needed() -> None:
    # Prepare: three learners, training starts, then one drops
    drops: list[tuple[str, int]] = []
    manager = FlopsClientManager(connect_timeout=0.3, on_drop=lambda c, n: drops.append((c, n)))
    learners = [_Learner(cid) for cid in "abc"]
    for learner in learners:
        manager.register(learner)
    manager.sample(num_clients=3, min_num_clients=3)

    # Execute
    manager.unregister(learners[2])
    chosen = manager.sample(num_clients=2, min_num_clients=3)

    # Assert
    assert len(chosen) == 2
    assert manager.dropped == ["c"]
    assert drops == [("c", 2)]


def test_learners_leaving_after_training_are_not_drops() -> None:
    # Prepare
    manager = FlopsClientManager(connect_timeout=1)
    learner = _Learner("a")
    manager.register(learner)
    manager.sample(num_clients=1)
    manager.training_finished = True

    # Execute
    manager.unregister(learner)

    # Assert
    assert manager.dropped == []
