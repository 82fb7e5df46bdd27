"""Free TCP ports on loopback, for the processes tests and benchmarks start."""

from __future__ import annotations

import socket

__all__ = ["free_port", "free_ports"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that nothing listens on now.

    For services that listen on `port + i` (the embedded default's data server of node `i`).
    """
    for _ in range(attempts):
        first = free_port()
        if first + count > 65536:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1 in {attempts} tries")
