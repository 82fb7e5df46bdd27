"""A multi-node test bed: worker nodes as Linux network namespaces on one bridge.

Design. Each node is a network namespace with one veth into a bridge on this machine: its own
address in a private /24 (`10.231.<n>.0/24`, `<n>` picked at random among the free ones), `lo`
up, a default route via the bridge's address (the "host side", where the manager and MLflow
listen). A node's processes see only its network: its own address and loopback, the other
nodes and the host side through the bridge, never the host's `127.0.0.1`. Each node has its own
data directory and runs its own data server on port 11027, the same port on every node as on
real workers, started with `ip netns exec`.

Where `br_netfilter` hands bridged frames to iptables (Docker loads it and sets `FORWARD` to
`DROP`), traffic between two nodes would be dropped, so the bed inserts one `FORWARD` rule
accepting traffic within its bridge, commented with the bed's owner tag.

Everything the bed makes is named after its owner tag `flopstb-<pid>-<id>` (the process that
made it and a random id): namespaces `flopstb-<pid>-<id>-<node>`, interfaces `ftb<id>-...`
(interface names are at most 15 characters) whose alias is the owner tag. `close()` removes
it all, idempotently; it runs from the context manager, at interpreter exit, and on SIGTERM.
A bed that could not clean up (its process was SIGKILLed) is swept by the next bed: whatever
carries the tag of a process that no longer exists is removed, the processes inside its
namespaces killed first (`ip netns pids`).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from tests.wait import eventually

__all__ = [
    "DATA_SERVER_PORT",
    "DEFAULT_NODES",
    "BedNode",
    "TestBed",
    "sweep_leftovers",
]

ROOT = Path(__file__).resolve().parents[2]
DATA_SERVER_PORT = 11027
"""The data server's port on every node, as on real workers."""
DEFAULT_NODES: tuple[tuple[str, str], ...] = (("w1", "c1"), ("w2", "c1"), ("w3", "c2"))
"""(node, cluster) of the default bed: two clusters, three nodes."""
NETNS_PREFIX = "flopstb-"
LINK_PREFIX = "ftb"
_SUBNET_BASE = "10.231"


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command of the system (`ip`, `iptables`); a failure names the command and stderr."""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"`{shlex.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}"
        )
    return done


def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = _run(["ip", "-j", *args]).stdout.strip()
    return list(json.loads(out)) if out else []


def _owner_alive(tag: str) -> bool:
    """Whether the process named in an owner tag `flopstb-<pid>-<id>...` still exists."""
    pid_text = tag.removeprefix(NETNS_PREFIX).split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    return Path(f"/proc/{pid_text}").exists()


def _netns_names() -> list[str]:
    return [entry["name"] for entry in _ip_json("netns", "list")]


def _netns_pids(netns: str) -> list[int]:
    done = _run(["ip", "netns", "pids", netns], check=False)
    return [int(pid) for pid in done.stdout.split() if pid.isdigit()]


def _kill_all_in(netns: str) -> None:
    """SIGKILL every process in a namespace and wait until none is left."""

    def killed() -> bool:
        pids = _netns_pids(netns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not pids

    eventually(killed, f"no process left in network namespace {netns}", 15, interval=0.1)


def _delete_netns(netns: str) -> None:
    _kill_all_in(netns)
    _run(["ip", "netns", "delete", netns], check=False)


def _bridge_filtered() -> bool:
    """Whether bridged IPv4 traffic passes iptables (`br_netfilter` loaded and enabled)."""
    path = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    return path.exists() and path.read_text().strip() == "1"


def _forward_rules() -> list[list[str]]:
    if shutil.which("iptables") is None:
        return []
    done = _run(["iptables", "-S", "FORWARD"], check=False)
    return [shlex.split(line) for line in done.stdout.splitlines() if line.startswith("-A ")]


def _rule_owner(rule: list[str]) -> str | None:
    for flag, value in itertools.pairwise(rule):
        if flag == "--comment" and value.startswith(NETNS_PREFIX):
            return value
    return None


def sweep_leftovers() -> None:
    """Remove what beds of processes that no longer exist left: namespaces (and the processes
    in them), bridges and veths, iptables rules."""
    for netns in _netns_names():
        if netns.startswith(NETNS_PREFIX) and not _owner_alive(netns):
            _delete_netns(netns)
    for link in _ip_json("link", "show"):
        alias = str(link.get("ifalias") or "")
        name = str(link.get("ifname", ""))
        owned = name.startswith(LINK_PREFIX) and alias.startswith(NETNS_PREFIX)
        if owned and not _owner_alive(alias):
            _run(["ip", "link", "delete", name], check=False)
    for rule in _forward_rules():
        owner = _rule_owner(rule)
        if owner is not None and not _owner_alive(owner):
            _run(["iptables", "-D", *rule[1:]], check=False)


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for route in _ip_json("-4", "route", "show"):
        if route.get("dst") not in (None, "default"):
            used.append(ipaddress.IPv4Network(route["dst"], strict=False))
    for link in _ip_json("-4", "addr", "show"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return used


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for third in candidates:
        subnet = ipaddress.IPv4Network(f"{_SUBNET_BASE}.{third}.0/24")
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise RuntimeError(f"no free /24 in {_SUBNET_BASE}.0.0/16 for the test bed")


@dataclass
class BedNode:
    """One worker node of the bed.

    Parameters
    ----------
    name, cluster : str
        The node's name and its cluster's.
    address : str
        Its IPv4 address on the bridge.
    netns : str
        Its network namespace.
    data_dir : pathlib.Path
        Its data server's data directory.
    log : pathlib.Path
        Its data server's output.
    """

    name: str
    cluster: str
    address: str
    netns: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    down: bool = False

    @property
    def data_server_url(self) -> str:
        """Where every host reaches its data server, e.g. `grpc://10.231.7.11:11027`."""
        return f"grpc://{self.address}:{DATA_SERVER_PORT}"

    def output(self) -> str:
        """What its data server printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class TestBed:
    """A bridge and one network namespace per node; a context manager that always tears down.

    Parameters
    ----------
    workdir : pathlib.Path
        Nodes' data directories and logs go under it.
    nodes : Sequence[tuple[str, str]]
        (node name, cluster name) of each node; default three nodes in two clusters.
    python : str
        The interpreter that runs the data servers.
    """

    __test__ = False  # not a test class, although pytest would think so by its name

    def __init__(
        self,
        workdir: Path,
        nodes: Sequence[tuple[str, str]] = DEFAULT_NODES,
        *,
        python: str = sys.executable,
    ) -> None:
        if len({name for name, _ in nodes}) != len(nodes):
            raise ValueError(f"node names must differ: {nodes}")
        self.workdir = workdir
        self.python = python
        self.bed_id = secrets.token_hex(2)
        self.owner = f"{NETNS_PREFIX}{os.getpid()}-{self.bed_id}"
        self.bridge = f"{LINK_PREFIX}{self.bed_id}-br"
        self._node_specs = list(nodes)
        self.nodes: dict[str, BedNode] = {}
        self.subnet: ipaddress.IPv4Network | None = None
        self._forward_rule: list[str] | None = None
        self._previous_sigterm: Any = None
        self._closed = False

    # Life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Sweep leftovers of crashed beds, then build the network; tear down on failure."""
        if os.geteuid() != 0:
            raise PermissionError("the multi-node test bed needs root (network namespaces)")
        sweep_leftovers()
        atexit.register(self.close)
        self._catch_sigterm()
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process in the nodes and remove namespaces, bridge and rule; idempotent."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes.values():
            if node.netns in _netns_names():
                _delete_netns(node.netns)
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(10)
        for netns in _netns_names():  # a namespace made before a failure was recorded
            if netns.startswith(f"{self.owner}-"):
                _delete_netns(netns)
        _run(["ip", "link", "delete", self.bridge], check=False)
        if self._forward_rule is not None:
            _run(["iptables", "-D", *self._forward_rule], check=False)
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(signal.SIGTERM, self._previous_sigterm)
        atexit.unregister(self.close)

    def _catch_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit (so that `finally` blocks tear down), if nobody else
        handles it."""
        with contextlib.suppress(ValueError):  # not the main thread
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                self._previous_sigterm = signal.SIG_DFL

                def terminate(signum: int, frame: FrameType | None) -> None:
                    raise SystemExit(128 + signum)

                signal.signal(signal.SIGTERM, terminate)

    def _create(self) -> None:
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "link", "set", self.bridge, "alias", self.owner])
        _run(["ip", "addr", "add", f"{hosts[0]}/{self.subnet.prefixlen}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        if _bridge_filtered():
            if shutil.which("iptables") is None:
                raise RuntimeError(
                    "br_netfilter filters bridged traffic here but iptables is missing: "
                    "install iptables or set net.bridge.bridge-nf-call-iptables=0"
                )
            rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-m", "comment",
                    "--comment", self.owner, "-j", "ACCEPT"]  # fmt: skip
            _run(["iptables", "-I", *rule])
            self._forward_rule = rule
        for index, (name, cluster) in enumerate(self._node_specs):
            self._add_node(name, cluster, str(hosts[10 + index]))

    def _add_node(self, name: str, cluster: str, address: str) -> None:
        netns = f"{self.owner}-{name}"
        veth = f"{LINK_PREFIX}{self.bed_id}-{len(self.nodes)}"
        data_dir = self.workdir / name / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        _run(["ip", "netns", "add", netns])
        self.nodes[name] = BedNode(
            name=name, cluster=cluster, address=address, netns=netns, data_dir=data_dir,
            log=self.workdir / name / "data-server.log",
        )  # fmt: skip
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
        _run(["ip", "link", "set", veth, "alias", self.owner])
        _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        assert self.subnet is not None
        _run(
            ["ip", "-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0"]
        )
        _run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", netns, "route", "add", "default", "via", self.host_address])

    # Addresses -----------------------------------------------------------------------------
    @property
    def host_address(self) -> str:
        """The bridge's address: the host side, where manager and MLflow listen."""
        if self.subnet is None:
            raise RuntimeError("start() the test bed first")
        return str(next(self.subnet.hosts()))

    def node(self, name: str) -> BedNode:
        """The node called `name`."""
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(
                f"no node {name!r} on the bed (nodes: {', '.join(self.nodes)})"
            ) from None

    def clusters(self) -> dict[str, list[str]]:
        """Cluster -> its nodes' names, in the order given."""
        clusters: dict[str, list[str]] = {}
        for node in self.nodes.values():
            clusters.setdefault(node.cluster, []).append(node.name)
        return clusters

    # Processes -----------------------------------------------------------------------------
    def exec_argv(self, name: str, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside node `name`'s namespace."""
        return ["ip", "netns", "exec", self.node(name).netns, *argv]

    def run(
        self, name: str, argv: Sequence[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside node `name` and return what it did (no check of its code)."""
        return subprocess.run(
            self.exec_argv(name, argv), capture_output=True, text=True, timeout=timeout, check=False
        )

    def pids(self, name: str) -> list[int]:
        """The processes running in node `name`'s namespace."""
        return _netns_pids(self.node(name).netns)

    def start_data_server(
        self,
        name: str,
        *,
        manager_url: str | None = None,
        token: str | None = None,
        report_every_s: float = 1.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> BedNode:
        """Start node `name`'s data server on port 11027; with `manager_url` it registers there.

        Parameters
        ----------
        name : str
            The node.
        manager_url : str | None
            The manager's public URL; None: a plain data server that registers nowhere.
        token : str | None
            The node token (given in `FLOPS_NODE_TOKEN`, never on the command line).
        report_every_s : float
            Seconds between two reports to the manager.
        extra_env : Mapping[str, str] | None
            More environment for the process.
        """
        node = self.node(name)
        argv = [self.python, "-m", "flops_data_server", "serve", "--host", "0.0.0.0",
                "--port", str(DATA_SERVER_PORT), "--data-dir", str(node.data_dir)]  # fmt: skip
        if manager_url is not None:
            argv += ["--manager-url", manager_url, "--node-name", name, "--cluster", node.cluster,
                     "--report-every-s", f"{report_every_s:g}"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        if token is not None:
            env["FLOPS_NODE_TOKEN"] = token
        env.update(extra_env or {})
        with node.log.open("ab") as out:
            node.process = subprocess.Popen(
                self.exec_argv(name, argv), stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=node.data_dir.parent, start_new_session=True,
            )  # fmt: skip
        return node

    def wait_data_servers(self, timeout: float = 60) -> None:
        """Return once every running node's data server accepts connections at its address."""
        for node in self.nodes.values():
            if not node.down and node.process is not None:
                self._wait_accepting(node, node.process, timeout)

    @staticmethod
    def _wait_accepting(node: BedNode, process: subprocess.Popen[bytes], timeout: float) -> None:
        def accepts() -> bool:
            with socket.socket() as sock:
                sock.settimeout(1.0)
                return sock.connect_ex((node.address, DATA_SERVER_PORT)) == 0

        eventually(
            accepts,
            lambda: f"data server of {node.name} at {node.data_server_url}:\n{node.output()}",
            timeout,
            interval=0.2,
            give_up=lambda: None if process.poll() is None else f"exited with {process.returncode}",
        )

    def take_down(self, name: str) -> None:
        """Take node `name` off the network as a crash would: SIGKILL every process in its
        namespace, then delete the namespace (its address disappears with it)."""
        node = self.node(name)
        _delete_netns(node.netns)
        node.down = True
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)

    def leftovers(self) -> list[str]:
        """What of this bed still exists (namespaces, links, iptables rules): [] after close."""
        found = [n for n in _netns_names() if n.startswith(f"{self.owner}-")]
        found += [
            str(link["ifname"])
            for link in _ip_json("link", "show")
            if link.get("ifalias") == self.owner or link.get("ifname") == self.bridge
        ]
        found += [" ".join(rule) for rule in _forward_rules() if _rule_owner(rule) == self.owner]
        return found
