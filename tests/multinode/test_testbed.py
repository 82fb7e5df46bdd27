"""The test bed itself: separate network hosts that see each other, never the host's loopback,
and leave nothing behind, even after a crash."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multinode.conftest import bed_unavailable
from tests.multinode.testbed import ROOT, TestBed
from tests.wait import eventually

pytestmark = pytest.mark.multinode


def connect_from(bed: TestBed, node: str, host: str, port: int) -> int:
    """Errno of a TCP connect from inside `node` (0: connected)."""
    code = (
        "import socket, sys; s = socket.socket(); s.settimeout(3); "
        f"print(s.connect_ex(({host!r}, {port})))"
    )
    done = bed.run(node, [sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.fixture
def listeners(bed: TestBed) -> Iterator[dict[str, int]]:
    """A listening socket on the host's loopback and one on the bridge's host address."""
    loopback, bridge = socket.socket(), socket.socket()
    try:
        loopback.bind(("127.0.0.1", 0))
        bridge.bind((bed.host_address, 0))
        for sock in (loopback, bridge):
            sock.listen()
        yield {"loopback": loopback.getsockname()[1], "bridge": bridge.getsockname()[1]}
    finally:
        loopback.close()
        bridge.close()


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_nodes_have_their_own_addresses_and_reach_each_other_and_the_host_side(
    bed: TestBed, listeners: dict[str, int]
) -> None:
    # Prepare
    bed.start_data_server("w1")
    bed.wait_data_servers()

    # Execute
    to_w1 = connect_from(bed, "w3", bed.node("w1").address, 11027)
    to_host_side = connect_from(bed, "w2", bed.host_address, listeners["bridge"])
    to_host_loopback = connect_from(bed, "w2", "127.0.0.1", listeners["loopback"])
    addresses = json.loads(bed.run("w2", ["ip", "-j", "-4", "addr"]).stdout)

    # Assert
    assert to_w1 == 0 and to_host_side == 0
    assert to_host_loopback == errno.ECONNREFUSED  # the node's own loopback, not the host's
    mine = sorted(a["local"] for link in addresses for a in link["addr_info"])
    assert mine == sorted(["127.0.0.1", bed.node("w2").address])
    assert len({node.address for node in bed.nodes.values()}) == 3
    assert bed.clusters() == {"c1": ["w1", "w2"], "c2": ["w3"]}


def test_taking_a_node_down_kills_its_processes_and_removes_its_address(tmp_path: Path) -> None:
    if reason := bed_unavailable():
        pytest.skip(reason)
    with TestBed(tmp_path, nodes=[("x1", "c1"), ("x2", "c1")]) as bed:
        # Prepare: its data server and another process run in the node
        bed.start_data_server("x1")
        bed.wait_data_servers()
        sleeper = subprocess.Popen(bed.exec_argv("x1", ["sleep", "300"]))
        address = bed.node("x1").address

        # Execute
        bed.take_down("x1")

        # Assert
        assert sleeper.wait(10) == -signal.SIGKILL
        process = bed.node("x1").process
        assert process is not None and process.poll() is not None
        assert connect_from(bed, "x2", address, 11027) != 0
        assert not any(name.endswith("-x1") for name in bed.leftovers())


def test_closing_the_bed_leaves_nothing(tmp_path: Path) -> None:
    if reason := bed_unavailable():
        pytest.skip(reason)
    bed = TestBed(tmp_path, nodes=[("x1", "c1")]).start()
    bed.start_data_server("x1")
    bed.wait_data_servers()
    assert bed.leftovers()

    bed.close()
    bed.close()  # idempotent

    assert bed.leftovers() == []
    process = bed.node("x1").process
    assert process is not None and process.poll() is not None


_CRASHING_RUN = """
import os, signal, subprocess, sys
from pathlib import Path
from tests.multinode.testbed import TestBed
bed = TestBed(Path(sys.argv[1]), nodes=[("x1", "c1")]).start()
sleeper = subprocess.Popen(
    bed.exec_argv("x1", ["sleep", "300"]), start_new_session=True,
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
print(bed.owner, sleeper.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_bed_sweeps_what_a_crashed_run_left(tmp_path: Path) -> None:
    if reason := bed_unavailable():
        pytest.skip(reason)
    # Prepare: a run SIGKILLed with its bed up and a process in a node
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_RUN, str(tmp_path / "crashed")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    owner, sleeper = crashed.stdout.split()
    assert owner in subprocess.check_output(["ip", "netns"], text=True)

    # Execute
    with TestBed(tmp_path / "next", nodes=[("y1", "c1")]):
        pass

    # Assert
    eventually(lambda: gone(int(sleeper)), f"the crashed run's process {sleeper} killed", 10)
    links = subprocess.check_output(["ip", "-d", "link"], text=True)
    assert owner not in subprocess.check_output(["ip", "netns"], text=True)
    assert owner not in links
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert owner not in rules
