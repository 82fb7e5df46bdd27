"""Bytes the top-level aggregator receives per root round: classic FL against hierarchical FL.

    .venv/bin/python bench/hfl_traffic.py [--learners 4] [--clusters 2] [--cycles 2]
                                          [--rounds 2] [--native-threads 1]

Both runs train the `examples/sklearn-digits` ModelManager on the same K partitions of
scikit-learn's digits, served by one real ML data server, with FedAvg and K learners:

- classic: `python -m flops_aggregator` and K learners, `cycles x rounds` rounds, so that both
  runs train the same number of rounds;
- hierarchical: a root aggregator (`--hierarchy root`, `cycles` rounds), C cluster aggregators
  (`--hierarchy cluster`, `rounds` rounds per cycle) and the same K learners split among them.

The wire bytes are counted by a TCP proxy that sits in front of the top-level aggregator's
gRPC port (the classic aggregator, or the root): everything its Flower clients (learners, or
cluster aggregators) send is counted on its way through, with gRPC and HTTP/2 framing, and
connection set-up and the final disconnect included. Bytes per root round are the total
divided by the top-level aggregator's rounds (classic: rounds; hierarchical: cycles). Clients
start only once the proxy listens and forwards to a listening server, so that no refused
connection attempt is counted. Nothing is timed: the numbers are bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from tempfile import mkdtemp
from types import FrameType

from _common import ROOT, Proc, Processes, child_env, free_port, start_data_server, wait_for_port

REPO = ROOT / "examples" / "sklearn-digits"
PY = sys.executable


class ByteCountingProxy:
    """A TCP proxy on 127.0.0.1 to `target_port` that counts the bytes in each direction.

    Runs its own asyncio loop on a daemon thread. `upstream` counts what clients sent to the
    target (what the target received), `downstream` what the target sent back.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.upstream = 0
        self.downstream = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="byte-proxy", daemon=True)

    def start(self) -> ByteCountingProxy:
        """Listen on `self.port`; return once connections are accepted."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the byte-counting proxy did not start")
        return self

    def stop(self) -> None:
        """Stop the loop (open connections are dropped)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            client_writer.close()
            return
        self.connections += 1
        await asyncio.gather(
            self._pipe(client_reader, target_writer, upstream=True),
            self._pipe(target_reader, client_writer, upstream=False),
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if upstream:
                    self.upstream += len(data)
                else:
                    self.downstream += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@dataclass
class Traffic:
    """Bytes through the proxy in front of the top-level aggregator during one run."""

    name: str
    top_rounds: int
    upstream: int
    downstream: int
    connections: int

    @property
    def per_round(self) -> float:
        """Bytes the top-level aggregator received per round of its own."""
        return self.upstream / self.top_rounds


def aggregator_argv(project: str, port: int, rounds: int, clients: int, *extra: str) -> list[str]:
    """Command line of an aggregator (classic, root or cluster) without MLflow."""
    k = str(clients)
    return [PY, "-m", "flops_aggregator", "--project-id", project, "--repo-dir", str(REPO),
            "--address", f"127.0.0.1:{port}", "--rounds", str(rounds),
            "--min-available-clients", k, "--min-fit-clients", k, "--min-evaluate-clients", k,
            "--connect-timeout", "90", *extra]  # fmt: skip


def learner_argv(project: str, name: str, port: int, data_server: str, partition: int) -> list[str]:
    """Command line of a learner training on partition `digits-<partition>`."""
    return [PY, "-m", "flops_learner", "--project-id", project, "--name", name,
            "--repo-dir", str(REPO), "--aggregator", f"127.0.0.1:{port}",
            "--data-server", data_server, "--data-tags", f"digits-{partition}"]  # fmt: skip


def run_classic(procs: Processes, data_server: str, args: argparse.Namespace) -> Traffic:
    """K learners on one aggregator, `cycles x rounds` rounds, through the proxy."""
    project, port, rounds = (
        f"classic-{uuid.uuid4().hex[:6]}",
        free_port(),
        args.cycles * args.rounds,
    )
    top = procs.start("classic", aggregator_argv(project, port, rounds, args.learners))
    wait_for_port(top, port)
    proxy = ByteCountingProxy(port).start()
    try:
        learners = [
            procs.start(f"classic-l{i}", learner_argv(project, f"l{i}", proxy.port, data_server, i))
            for i in range(args.learners)
        ]
        _expect_success([top, *learners], timeout=240)
    finally:
        proxy.stop()
    return Traffic(
        f"classic: {args.learners} learners -> aggregator",
        rounds,
        proxy.upstream,
        proxy.downstream,
        proxy.connections,
    )


def run_hierarchical(procs: Processes, data_server: str, args: argparse.Namespace) -> Traffic:
    """The same K learners in C clusters; only the clusters talk to the root, via the proxy."""
    project, port = f"hfl-{uuid.uuid4().hex[:6]}", free_port()
    root = procs.start(
        "root", aggregator_argv(project, port, args.cycles, args.clusters, "--hierarchy", "root")
    )
    wait_for_port(root, port)
    proxy = ByteCountingProxy(port).start()
    started = [root]
    try:
        for c, members in enumerate(_split(args.learners, args.clusters)):
            cluster_port = free_port()
            extra = ["--hierarchy", "cluster", "--cluster", f"c{c}",
                     "--root-address", f"127.0.0.1:{proxy.port}"]  # fmt: skip
            argv = aggregator_argv(project, cluster_port, args.rounds, len(members), *extra)
            started.append(procs.start(f"cluster-c{c}", argv))
            for i in members:
                argv = learner_argv(project, f"c{c}-l{i}", cluster_port, data_server, i)
                started.append(procs.start(f"cluster-c{c}-l{i}", argv))
        _expect_success(started, timeout=240)
    finally:
        proxy.stop()
    return Traffic(
        f"hierarchical: {args.learners} learners -> {args.clusters} clusters -> root",
        args.cycles,
        proxy.upstream,
        proxy.downstream,
        proxy.connections,
    )


def _split(learners: int, clusters: int) -> list[list[int]]:
    """Learner indices per cluster, as even as possible (cluster c gets c, c+C, ...)."""
    return [list(range(c, learners, clusters)) for c in range(clusters)]


def _expect_success(procs: list[Proc], timeout: float) -> None:
    for proc in procs:
        if proc.wait(timeout) != 0:
            raise RuntimeError(f"{proc.name} failed (log {proc.log}):\n{proc.tail()}")


def _report(args: argparse.Namespace, classic: Traffic, hierarchical: Traffic) -> None:
    print(
        f"\nsklearn-digits, FedAvg, {args.learners} learners; hierarchical: {args.clusters} "
        f"clusters, {args.cycles} cycles x {args.rounds} rounds; classic: "
        f"{classic.top_rounds} rounds"
    )
    print(
        f"{'run':<52}{'top rounds':>11}{'bytes in':>11}{'bytes out':>11}{'conns':>6}"
        f"{'in/round':>11}{'ratio':>7}"
    )
    for run in (classic, hierarchical):
        print(
            f"{run.name:<52}{run.top_rounds:>11}{run.upstream:>11}{run.downstream:>11}"
            f"{run.connections:>6}{run.per_round:>11.0f}{run.per_round / classic.per_round:>7.2f}"
        )
    print(
        "bytes in: received by the top-level aggregator (classic aggregator or root) on its "
        "gRPC port,\nwire bytes incl. gRPC/HTTP2 framing, connection set-up and disconnect; "
        "in/round = bytes in / top rounds"
    )
    total = hierarchical.upstream / classic.upstream
    print(f"hierarchical/classic bytes received for the whole training (same rounds): {total:.2f}")
    ratio = hierarchical.per_round / classic.per_round
    print(f"hierarchical/classic bytes received per root round: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=4, help="learners (K)")
    parser.add_argument("--clusters", type=int, default=2, help="clusters (C) in hierarchical")
    parser.add_argument("--cycles", type=int, default=2, help="root rounds (training_cycles)")
    parser.add_argument("--rounds", type=int, default=2, help="cluster rounds per cycle")
    parser.add_argument(
        "--native-threads", type=int, default=1, help="OpenBLAS/OpenMP threads per process"
    )
    args = parser.parse_args()
    if not 1 <= args.clusters <= args.learners:
        parser.error("--clusters must be between 1 and --learners")

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # stop every child, also when backgrounded
        signal.signal(signum, interrupted)
    workdir = Path(mkdtemp(prefix="flops-bench-hfl-"))
    procs = Processes(workdir, child_env(args.native_threads))
    try:
        data_server = start_data_server(procs, args.learners)
        print(f"classic: {args.learners} learners, {args.cycles * args.rounds} rounds ...")
        classic = run_classic(procs, data_server, args)
        print(f"hierarchical: {args.clusters} clusters, {args.cycles} cycles ...")
        hierarchical = run_hierarchical(procs, data_server, args)
    except KeyboardInterrupt:
        sys.exit(f"interrupted; logs in {workdir}")
    except RuntimeError as e:
        sys.exit(f"error: {e}\nlogs in {workdir}")
    finally:
        procs.stop_all()
    _report(args, classic, hierarchical)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
