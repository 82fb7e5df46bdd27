"""Tests for `PackageIndex` against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flops_core.requirements.package_index import (
    PackageIndex,
    PackageIndexError,
    PackageIndexUnavailableError,
)

PROJECTS = ("numpy", "scikit-learn", "torch")


class _IndexHandler(SimpleHTTPRequestHandler):
    """Serves a folder as a PEP 503 index; records paths; fails while `failures` is positive."""

    server: _IndexServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send_error(self.server.failure_status)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _IndexServer(ThreadingHTTPServer):
    paths: list[str]
    failures: int
    failure_status: int


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    """A tiny simple index: `/simple/<project>/index.html` for each of `PROJECTS`."""
    for project in PROJECTS:
        folder = tmp_path / "simple" / project
        folder.mkdir(parents=True)
        link = f'<a href="../../files/{project}-1.0.tar.gz">{project}-1.0.tar.gz</a>'
        (folder / "index.html").write_text(f"<!DOCTYPE html><html><body>{link}</body></html>")
    return tmp_path


@pytest.fixture
def server(index_dir: Path) -> Iterator[_IndexServer]:
    """A real HTTP server for `index_dir` on a free port of 127.0.0.1."""
    handler = partial(_IndexHandler, directory=str(index_dir))
    httpd = _IndexServer(("127.0.0.1", 0), handler)
    httpd.paths, httpd.failures, httpd.failure_status = [], 0, 500
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def url_of(server: _IndexServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/simple/"


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_exists_answers_from_the_index_with_pep503_names(server: _IndexServer) -> None:
    # Prepare
    index = PackageIndex(url_of(server), timeout=5)

    # Execute
    with index:
        answers = [index.exists(n) for n in ("numpy", "Scikit_Learn", "scikit.learn", "nope")]

    # Assert
    assert answers == [True, True, True, False]
    assert server.paths == ["/simple/numpy/", "/simple/scikit-learn/", "/simple/nope/"]


def test_answers_are_cached(server: _IndexServer) -> None:
    # Prepare
    with PackageIndex(url_of(server), timeout=5) as index:
        # Execute
        first, second = index.exists("torch"), index.exists("TORCH")

    # Assert
    assert first and second
    assert server.paths == ["/simple/torch/"]


def test_server_error_is_retried_with_backoff(server: _IndexServer) -> None:
    # Prepare
    server.failures = 1
    sleeps: list[float] = []
    index = PackageIndex(url_of(server), timeout=5, backoff=0.2, sleep=sleeps.append)

    # Execute
    with index:
        found = index.exists("numpy")

    # Assert
    assert found is True
    assert server.paths == ["/simple/numpy/", "/simple/numpy/"]
    assert len(sleeps) == 1 and 0.1 <= sleeps[0] <= 0.2


def test_persistent_server_error_raises_unavailable_after_retries(server: _IndexServer) -> None:
    # Prepare
    server.failures = 100
    sleeps: list[float] = []
    index = PackageIndex(url_of(server), timeout=5, retries=3, backoff=1.0, sleep=sleeps.append)

    # Execute
    with index, pytest.raises(PackageIndexUnavailableError) as caught:
        index.exists("numpy")

    # Assert
    assert len(server.paths) == 4
    assert "HTTP 500" in str(caught.value)
    assert [(0.5 * 2**i) <= s <= 2**i for i, s in enumerate(sleeps)] == [True] * 3


def test_refused_connection_raises_unavailable(tmp_path: Path) -> None:
    # Prepare
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/simple"
    index = PackageIndex(url, timeout=5, retries=2, sleep=sleeps.append)

    # Execute
    with index, pytest.raises(PackageIndexUnavailableError) as caught:
        index.exists("numpy")

    # Assert
    assert len(sleeps) == 2
    assert "ConnectError" in str(caught.value)
    assert url in str(caught.value)


def test_forbidden_is_permanent_and_not_retried(server: _IndexServer) -> None:
    # Prepare
    server.failures, server.failure_status = 1, 403
    sleeps: list[float] = []
    index = PackageIndex(url_of(server), timeout=5, sleep=sleeps.append)

    # Execute
    with index, pytest.raises(PackageIndexError) as caught:
        index.exists("numpy")

    # Assert
    assert not isinstance(caught.value, PackageIndexUnavailableError)
    assert sleeps == []
    assert "HTTP 403" in str(caught.value)


def test_file_url_names_a_local_simple_index(index_dir: Path) -> None:
    # Prepare
    index = PackageIndex((index_dir / "simple").as_uri(), timeout=5)

    # Execute
    with index:
        answers = index.exists("Torch"), index.exists("tensorflow")

    # Assert
    assert answers == (True, False)
