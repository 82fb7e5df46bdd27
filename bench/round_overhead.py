"""Per-round time of FLOps against bare Flower (gRPC `start_server`/`start_client`) and SuperLink.

    .venv/bin/python bench/round_overhead.py [--rounds N] [--learners K] [--repeats R]
                                             [--skip-superlink] [--native-threads T]

All three runtimes train the `examples/sklearn-digits` ModelManager on the same K partitions of
scikit-learn's digits, served by one real ML data server, with FedAvg and K learners. A round
is timed the same way in each, inside the server: from the start of `fit_round` to the end of
`evaluate_round` (FLOps reports it as `duration_s` of its `round_completed` event; the bare
server and the SuperLink's ServerApp use the app's `TimedServer`). Round 1 also includes
waiting for learners to connect, so it is reported apart; the figure compared is the median of
rounds 2..N. Bare and FLOps runs alternate `--repeats` times and the median of the per-run
medians is compared. Every process gets one OpenBLAS/OpenMP thread by default: K learners
share this machine's two cores, and the libraries' default thread pools oversubscribe them
and make round times several times longer and far noisier (see README).

The script also runs its own bare Flower processes: `--role bare-server|bare-client`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from tempfile import mkdtemp
from types import FrameType

from _common import (
    ROOT,
    VENV_BIN,
    Proc,
    Processes,
    child_env,
    free_port,
    median,
    start_data_server,
    wait_for_port,
)

from flops_core.mlflow_server import start_mlflow_server
from tests.event_receiver import EventReceiver
from tests.wait import eventually

REPO = ROOT / "examples" / "sklearn-digits"
APP_DIR = Path(__file__).resolve().parent / "superlink_app"
TARGET = 1.10
PY = sys.executable


@dataclass
class Rounds:
    """Per-round times of one training run, in seconds."""

    durations: list[float]
    ends: list[float]

    @property
    def steady(self) -> float:
        """Median round time without the warm-up round."""
        return median(self.durations[1:])

    @property
    def period(self) -> float:
        """Median time from one round's end to the next, from round 2 on (gaps included)."""
        return median([b - a for a, b in pairwise(self.ends)])


@dataclass
class Bench:
    """What every run shares."""

    procs: Processes
    events: EventReceiver
    mlflow_url: str
    data_server: str
    learners: int
    rounds: int


def run_bare(bench: Bench, run: int) -> Rounds:
    """One training run of the bare Flower server and clients; per-round times."""
    port, timings = free_port(), bench.procs.workdir / f"bare-{run}.json"
    me = [PY, str(Path(__file__).resolve()), "--port", str(port)]
    argv = [*me, "--role", "bare-server", "--rounds", str(bench.rounds),
            "--learners", str(bench.learners), "--timings", str(timings)]  # fmt: skip
    started = [bench.procs.start(f"bare-{run}-server", argv)]
    wait_for_port(started[0], port)  # start_client does not retry a refused connection
    for i in range(bench.learners):
        argv = [*me, "--role", "bare-client", "--partition", str(i),
                "--data-server", bench.data_server]  # fmt: skip
        started.append(bench.procs.start(f"bare-{run}-client-{i}", argv))
    _expect_success(started, timeout=120 + 10 * bench.rounds)
    data = json.loads(timings.read_text())
    return Rounds(data["durations"], data["ends"])


def run_flops(bench: Bench, run: int) -> Rounds:
    """One FLOps training run, aggregator and learners started as the e2e tests start them."""
    port, project, k = free_port(), f"bench-{run}-{uuid.uuid4().hex[:6]}", str(bench.learners)
    argv = [PY, "-m", "flops_aggregator", "--project-id", project, "--repo-dir", str(REPO),
            "--address", f"127.0.0.1:{port}", "--flavor", "sklearn", "--rounds", str(bench.rounds),
            "--min-available-clients", k, "--min-fit-clients", k, "--min-evaluate-clients", k,
            "--mlflow-uri", bench.mlflow_url, "--callback-url", bench.events.url,
            "--connect-timeout", "90"]  # fmt: skip
    started = [bench.procs.start(f"flops-{run}-aggregator", argv)]
    wait_for_port(started[0], port)  # a learner started earlier would exit (see README)
    for i in range(bench.learners):
        argv = [PY, "-m", "flops_learner", "--project-id", project, "--name", f"l{i}",
                "--repo-dir", str(REPO), "--aggregator", f"127.0.0.1:{port}",
                "--data-server", bench.data_server, "--data-tags", f"digits-{i}"]  # fmt: skip
        started.append(bench.procs.start(f"flops-{run}-learner-{i}", argv))
    _expect_success(started, timeout=180 + 10 * bench.rounds)
    completed = bench.events.of_type("round_completed")
    events = sorted(
        (e for e in completed if e["project_id"] == project), key=lambda e: e["data"]["round"]
    )
    if len(events) != bench.rounds:
        raise RuntimeError(f"FLOps reported {len(events)} of {bench.rounds} rounds")
    return Rounds(
        [float(e["data"]["duration_s"]) for e in events],
        [datetime.fromisoformat(e["timestamp"]).timestamp() for e in events],
    )


def run_superlink(
    procs: Processes, data_server: str, learners: int, rounds: int, timeout: float
) -> Rounds:
    """One run of the app in `superlink_app/` on a local SuperLink and K SuperNodes."""
    home, port = procs.workdir / "flwr", free_port()
    argv = [str(VENV_BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
            "--port", str(port), "--disable-runtime-dependency-installation"]  # fmt: skip
    superlink = procs.start("superlink", argv, FLWR_HOME=str(home / "superlink"))
    for i in range(learners):
        argv = [str(VENV_BIN / "flower-supernode"), "--insecure",
                "--superlink", f"127.0.0.1:{port}", "--host", "127.0.0.1",
                "--port", str(free_port()), "--node-config", f"partition-id={i}"]  # fmt: skip
        procs.start(f"supernode-{i}", argv, FLWR_HOME=str(home / f"node-{i}"))
    # flwr 1.41 reads SuperLink connections from FLWR_HOME/config.toml, not pyproject.toml.
    (home / "cli").mkdir(parents=True)
    (home / "cli" / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    timings = procs.workdir / "superlink.json"
    run_config = (
        f'num-server-rounds={rounds} min-clients={learners} repo-dir="{REPO}" '
        f'data-server="{data_server}" timings-file="{timings}"'
    )
    deadline = time.monotonic() + timeout
    wait_for_port(superlink, port)
    submit = subprocess.run(
        [str(VENV_BIN / "flwr"), "run", str(APP_DIR), "bench", "--run-config", run_config],
        env={**procs.env, "FLWR_HOME": str(home / "cli")},
        capture_output=True,
        text=True,
        cwd=procs.workdir,
        timeout=60,
    )
    if submit.returncode != 0:
        raise RuntimeError(f"flwr run failed: {submit.stdout}{submit.stderr}")
    data: dict[str, list[float]] = eventually(
        lambda: json.loads(timings.read_text()) if timings.exists() else {"durations": []},
        f"the ServerApp timed {rounds} rounds", max(0.0, deadline - time.monotonic()),
        until=lambda data: len(data["durations"]) >= rounds, interval=0.5,
    )  # fmt: skip
    return Rounds(data["durations"], data["ends"])


def _expect_success(procs: list[Proc], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        if proc.wait(max(1.0, deadline - time.monotonic())) != 0:
            raise RuntimeError(f"{proc.name} failed (log {proc.log}):\n{proc.tail()}")


def bare_server(args: argparse.Namespace) -> None:
    """Bare Flower server: `start_server` with plain FedAvg and a timed `Server`."""
    from flops_bench_app.server_app import TimedServer
    from flwr.server import ServerConfig, SimpleClientManager, start_server
    from flwr.server.strategy import FedAvg

    logging.getLogger("flwr").setLevel(logging.WARNING)  # as quiet as the FLOps aggregator
    k = args.learners
    strategy = FedAvg(min_fit_clients=k, min_evaluate_clients=k, min_available_clients=k)
    server = TimedServer(
        timings_file=Path(args.timings), client_manager=SimpleClientManager(), strategy=strategy
    )
    start_server(
        server_address=f"127.0.0.1:{args.port}",
        server=server,
        config=ServerConfig(num_rounds=args.rounds),
    )


def bare_client(args: argparse.Namespace) -> None:
    """Bare Flower client: `start_client` around the repo's ModelManager."""
    from flops_bench_app.client_app import DigitsClient, load_model_manager
    from flwr.client import start_client

    logging.getLogger("flwr").setLevel(logging.WARNING)  # as quiet as the FLOps learner
    model_manager = load_model_manager(str(REPO), args.data_server, args.partition)
    start_client(
        server_address=f"127.0.0.1:{args.port}",
        client=DigitsClient(model_manager).to_client(),
        insecure=True,
    )


def benchmark(args: argparse.Namespace, workdir: Path) -> bool:
    """Run everything, print the table and the verdict; return whether all parts ran."""
    started = time.monotonic()
    procs = Processes(workdir, child_env(native_threads=args.native_threads))
    events = EventReceiver()
    superlink, why_not = None, "skipped (--skip-superlink)"
    try:
        print(f"starting MLflow and the data server ({args.learners} partitions) ...")
        mlflow = start_mlflow_server(workdir / "mlflow", port=free_port())
        procs.started.append(Proc("mlflow", mlflow.process, mlflow.log_file))
        data_server = start_data_server(procs, args.learners)
        bench = Bench(procs, events, mlflow.url, data_server, args.learners, args.rounds)
        bare: list[Rounds] = []
        flops: list[Rounds] = []
        for run in range(1, args.repeats + 1):
            bare.append(run_bare(bench, run))
            flops.append(run_flops(bench, run))
            print(
                f"run {run}/{args.repeats}: bare {bare[-1].steady * 1000:.1f} ms, "
                f"FLOps {flops[-1].steady * 1000:.1f} ms per round"
            )
        if not args.skip_superlink:
            print(f"SuperLink/SuperNode reference ({args.superlink_rounds} rounds) ...")
            mlflow.stop()  # the reference needs neither MLflow nor the FLOps processes
            try:
                superlink = run_superlink(
                    procs, data_server, args.learners, args.superlink_rounds, args.superlink_timeout
                )
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                why_not = f"could not run: {str(e).splitlines()[0]} (logs in {workdir})"
    finally:
        procs.stop_all()
        events.close()
    _report(args, bare, flops, superlink, why_not, time.monotonic() - started)
    return superlink is not None or args.skip_superlink


def _report(
    args: argparse.Namespace,
    bare: list[Rounds],
    flops: list[Rounds],
    superlink: Rounds | None,
    why_not: str,
    elapsed: float,
) -> None:
    base = median([r.steady for r in bare])
    rows = [
        ("bare Flower (start_server/start_client)", bare),
        ("FLOps (aggregator + learners, MLflow)", flops),
    ] + ([("Flower SuperLink/SuperNode", [superlink])] if superlink else [])
    print(
        f"\n{args.learners} learners, sklearn-digits; rounds 2..N median (round 1 apart); "
        f"bare/FLOps: {args.rounds} rounds x {args.repeats} runs, median of run medians"
    )
    print(f"{'runtime':<42}{'round 1 s':>10}{'round s':>10}{'ratio':>8}{'period s':>10}")
    for name, runs in rows:
        steady = median([r.steady for r in runs])
        warmup = median([r.durations[0] for r in runs])
        period = median([r.period for r in runs])
        print(f"{name:<42}{warmup:>10.4f}{steady:>10.4f}{steady / base:>8.2f}{period:>10.4f}")
    if superlink is None:
        print(f"{'Flower SuperLink/SuperNode':<42}{why_not}")
    else:
        print(
            f"(SuperLink: {len(superlink.durations)} rounds of one run, timed inside its "
            f"ServerApp like the others; start-up and `flwr run` are not included)"
        )
    # Verdict on paired runs (each FLOps run against the bare run just before it), which
    # cancels the slow drift of this shared 2-core machine; the spread shows the noise.
    paired = sorted(f.steady / b.steady for b, f in zip(bare, flops, strict=True))
    ratio = median(paired)
    print(
        f"paired FLOps/bare ratios over {len(paired)} runs: "
        + ", ".join(f"{r:.2f}" for r in paired)
    )
    print("round 1 includes waiting for learners to connect; 'period' = end of one round to")
    print("the end of the next, i.e. with the work done between rounds (e.g. FLOps' on_round)")
    print(f"total benchmark time: {elapsed:.0f} s")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"FLOps/bare ratio (median of pairs): {ratio:.2f} (target <= {TARGET:.2f}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="rounds per bare/FLOps run")
    parser.add_argument("--learners", type=int, default=3, help="learners (K)")
    parser.add_argument("--repeats", type=int, default=5, help="bare/FLOps run pairs")
    parser.add_argument("--skip-superlink", action="store_true", help="no SuperLink reference")
    parser.add_argument("--superlink-rounds", type=int, default=3, help="SuperLink rounds")
    parser.add_argument("--superlink-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument(
        "--native-threads",
        type=int,
        default=1,
        help="OpenBLAS/OpenMP threads per process (0: library default; see README)",
    )
    # Internal: the bare Flower processes this script starts.
    internal = argparse.SUPPRESS
    parser.add_argument("--role", choices=["bare-server", "bare-client"], help=internal)
    for option in ("--port", "--partition"):
        parser.add_argument(option, type=int, help=internal)
    for option in ("--timings", "--data-server"):
        parser.add_argument(option, help=internal)
    args = parser.parse_args()
    if args.role:
        sys.path.insert(0, str(APP_DIR))
        {"bare-server": bare_server, "bare-client": bare_client}[args.role](args)
        return

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # stop every child, also when backgrounded
        signal.signal(signum, interrupted)
    workdir = Path(mkdtemp(prefix="flops-bench-"))
    try:
        complete = benchmark(args, workdir)
    except KeyboardInterrupt:
        sys.exit(f"interrupted; logs in {workdir}")
    except RuntimeError as e:
        sys.exit(f"error: {e}\nlogs in {workdir}")
    if complete:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
