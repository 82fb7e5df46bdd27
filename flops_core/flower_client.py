"""Connect a Flower client to its server over gRPC-bidi, retrying while the server starts.

Learners and cluster aggregators are deployed at the same time as the server they connect to
(an aggregator, or the root aggregator). Flower's gRPC-bidi `start_client` gives up on the
first refused connection whatever its retry settings say, so a server still starting would
fail its clients; connecting is retried here with exponential backoff and jitter.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

import grpc
from flwr.client import Client, start_client

__all__ = ["grpc_error_detail", "start_client_with_retry"]


def start_client_with_retry(
    *,
    server_address: str,
    client: Client,
    connect_timeout: float,
    may_retry: Callable[[], bool],
    on_retry: Callable[[float], None] | None = None,
) -> None:
    """Run `client` against `server_address` until the server ends the session.

    Parameters
    ----------
    server_address : str
        The Flower server, host:port (insecure gRPC).
    client : Client
        The Flower client; its exceptions end the session and propagate.
    connect_timeout : float
        Seconds to keep retrying an unreachable server.
    may_retry : Callable[[], bool]
        Whether an unreachable server may still be retried: false once the client has taken
        part in training, when `UNAVAILABLE` means the server went away rather than that it
        is not up yet.
    on_retry : Callable[[float], None] | None
        Called with the delay before each retry (for a log line).

    Raises
    ------
    grpc.RpcError
        The server stayed unreachable for `connect_timeout` seconds, or it was lost.
    """
    deadline = time.monotonic() + connect_timeout
    for attempt in itertools.count():
        try:
            start_client(server_address=server_address, client=client, insecure=True)
            return
        except grpc.RpcError as e:
            remaining = deadline - time.monotonic()
            retryable = e.code() == grpc.StatusCode.UNAVAILABLE and may_retry()
            if not retryable or remaining <= 0:
                raise
            delay = min(remaining, min(10.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))
            if on_retry is not None:
                on_retry(delay)
            time.sleep(delay)


def grpc_error_detail(error: grpc.RpcError) -> str:
    """`CODE: details` of a gRPC error, for a reason shown to users."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    return f"{getattr(code, 'name', code)}: {details}" if details else str(code)
