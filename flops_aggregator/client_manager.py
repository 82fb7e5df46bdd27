"""Flower client manager with bounded waits and a record of learners that drop out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.criterion import Criterion

from flops_aggregator.errors import NotEnoughLearnersError
from flops_core.logs import get_logger

__all__ = ["FlopsClientManager"]

_log = get_logger("aggregator.clients")


class FlopsClientManager(SimpleClientManager):
    """Pool of connected learners that never waits longer than `connect_timeout`.

    Flower's `SimpleClientManager` waits up to a day for `min_available_clients` before every
    round and silently returns no clients after that. This one raises
    `NotEnoughLearnersError` after `connect_timeout` seconds instead. Once training has
    started, a round needs only the clients the strategy wants to train (at least
    `min_fit_clients`), so that losing a learner above that floor does not stall training.

    Parameters
    ----------
    connect_timeout : float
        Seconds to wait for enough learners before a round.
    on_connect, on_drop : Callable[[str, int], None] | None
        Called with the learner id and the number connected after a learner joins, or leaves
        while training is running.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        on_connect: Callable[[str, int], None] | None = None,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__()
        self.connect_timeout = connect_timeout
        self.training_started = False
        self.training_finished = False
        self.dropped: list[str] = []
        #: Seconds spent waiting for learners in `sample`, so rounds can be timed without it.
        self.waited_s = 0.0
        self._on_connect = on_connect
        self._on_drop = on_drop
        self._lock = threading.Lock()

    def register(self, client: ClientProxy) -> bool:
        """Add a learner to the pool."""
        added = super().register(client)
        if added:
            _log.info("learner connected: %s (%s connected)", client.cid, len(self))
            if self._on_connect is not None:
                self._on_connect(client.cid, len(self))
        return added

    def unregister(self, client: ClientProxy) -> None:
        """Remove a learner; one that leaves while training runs is recorded as dropped."""
        known = client.cid in self.clients
        super().unregister(client)
        if known and self.training_started and not self.training_finished:
            with self._lock:
                self.dropped.append(client.cid)
            _log.warning("learner dropped: %s (%s still connected)", client.cid, len(self))
            if self._on_drop is not None:
                self._on_drop(client.cid, len(self))

    def sample(
        self,
        num_clients: int,
        min_num_clients: int | None = None,
        criterion: Criterion | None = None,
    ) -> list[ClientProxy]:
        """Wait (bounded) for enough learners, then sample `num_clients` of them."""
        needed = num_clients
        if min_num_clients is not None and not self.training_started:
            needed = max(num_clients, min_num_clients)
        started = time.perf_counter()
        enough = self.wait_for(needed, timeout=self.connect_timeout)  # type: ignore[arg-type]
        self.waited_s += time.perf_counter() - started
        if not enough:
            raise NotEnoughLearnersError(
                f"only {len(self)} of the {needed} learners needed were connected after "
                f"waiting {self.connect_timeout:g} s; check the learners' logs (a learner "
                f"that cannot load its data or its code exits before it connects)"
            )
        self.training_started = True
        chosen = super().sample(num_clients, min_num_clients=0, criterion=criterion)
        if not chosen:
            raise NotEnoughLearnersError(
                f"could not select {num_clients} learners from the {len(self)} connected"
            )
        return chosen
