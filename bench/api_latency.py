"""Latency of `GET /api/flops/projects/{id}` and of the project list under concurrent load.

    .venv/bin/python bench/api_latency.py [--concurrency 200] [--waves 10] [--clients 200]
                                          [--projects 1000] [--single 40]
                                          [--skip-project] [--project-timeout 600]

Starts a real manager (`python -m flops_manager`, loopback, free ports, a temporary data
directory whose database already holds `--projects` finished projects with their events),
pushes mock data and runs one real project (sklearn-digits, 3 learners, 3 rounds) to
`completed`, so that the project read has a realistic history of events and services.
Then `--waves` waves of `--concurrency` concurrent requests go to each endpoint, `/whoami`,
the project and the list (`GET /api/flops/projects` as clients send it, no parameters) taking
turns wave by wave so that drift touches all alike; during every list wave one
`GET /projects/{id}` is sent too and timed on its own. `/whoami` is the baseline: the same
admin token and authentication, but no query. `--single` sequential requests measure one
list's latency against one `/whoami`. `/health` (no token, a `SELECT 1` and a request to
MLflow) is measured after them, for reference. The manager runs the code that `PYTHONPATH`
names first (else this checkout), so that two checkouts can be compared with one script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import httpx
from _common import ROOT, child_env

from tests.flops_manager.api.manager_process import FINAL, ManagerProcess
from tests.wait import eventually

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Endpoint:
    """One endpoint under load and what its measured waves gave."""

    name: str
    path: str
    headers: dict[str, str]
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0
    #: Sent once with every measured wave of this endpoint and timed apart.
    probe: Endpoint | None = None

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile `q` (0..100) of the latencies in seconds; NaN if none."""
        ordered = sorted(self.latencies) or [float("nan")]
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _stat(pid: int) -> list[str]:
    """Fields of /proc/`pid`/stat after the command name (state first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _server_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    return sum(int(ticks) for ticks in _stat(pid)[11:13]) / TICK


def _free_ports(count: int) -> int:
    """The first of `count` consecutive free ports below the kernel's ephemeral range."""
    # A port from that range can be given to an outgoing connection before a service binds it.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        base = random.randrange(10_000, max(low, 20_000) - count)
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
            with contextlib.suppress(OSError):
                for port, s in enumerate(sockets, base):
                    s.bind(("127.0.0.1", port))
                return base


def seed_projects(data_dir: Path, count: int) -> None:
    """Write `count` finished projects with 16 events each into the manager's database.

    The rows are what a finished sklearn-digits project leaves (a full configuration, state
    transitions, builder steps, three rounds, the outcome), written with the tables of the
    code under test before the manager starts, so that its list has a history to go through.
    """
    import flops_manager
    from flops_manager.db import Database, Project, ProjectEvent  # the code under test

    print(f"manager code: {Path(flops_manager.__file__).parent.parent}")

    data_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "customer_id": "Admin", "ml_repo_ref": None, "ml_model_flavor": "sklearn",
        "verbose": False, "use_devel_base_images": False,
        "supported_platforms": ["linux/amd64"], "learner_platforms": None,
        "training_configuration": {
            "mode": "classic", "data_tags": ["digits"], "training_rounds": 3,
            "training_cycles": 1, "min_available_clients": 3, "min_fit_clients": 3,
            "min_evaluate_clients": 3, "learners": None, "strategy": "FedAvg",
            "strategy_params": {}, "round_timeout_s": 300.0, "connect_timeout_s": 300.0,
        },
        "resource_constraints": {"memory": 1024, "vcpus": 1.0, "storage": 0},
        "post_training_steps": [],
    }  # fmt: skip
    metrics = {"loss": 0.21, "accuracy": 0.94, "examples": 1437.0, "learners": 3.0}
    start = datetime(2026, 11, 1, tzinfo=UTC)
    database = Database(f"sqlite:///{data_dir / 'flops.db'}")
    try:
        with database.session() as session:
            for i in range(count):
                state = ("completed", "failed", "cancelled")[i % 3]
                project = Project(
                    customer_id=f"customer-{i % 7}", state=state, message=f"{state} (seeded)",
                    config=config, repo_url="https://example.org/ml/sklearn-digits.git",
                    commit="a11b8c45b99c" * 3, created_at=start + timedelta(minutes=i),
                    result={"best_round": 3, "metrics": metrics},
                )  # fmt: skip
                kinds = [("state", "pending"), ("state", "building"),
                         *[("event", "step_completed")] * 5, ("state", "training"),
                         ("event", "started"), *[("event", "learner_connected")] * 3,
                         *[("event", "round_completed")] * 3, ("state", state)]  # fmt: skip
                for n, (kind, kind_type) in enumerate(kinds):
                    project.events.append(
                        ProjectEvent(
                            kind=kind, type=kind_type, source="aggregator",
                            data={"round": n, "rounds": 3, "metrics": metrics},
                        )
                    )  # fmt: skip
                session.add(project)
    finally:
        database.close()


def start_manager(workdir: Path, env: dict[str, str]) -> ManagerProcess:
    """Start `python -m flops_manager` in `workdir` with `env`; return it once healthy.

    Its data directory is `workdir/data` (seeded before), its log `workdir/manager.log`.
    """
    port = _free_ports(5)  # the API, MLflow, then one data server for each of the 3 nodes
    manager = ManagerProcess(
        workdir, **env, FLOPS_ADMIN_TOKEN=ADMIN_TOKEN, FLOPS_PORT=str(port),
        FLOPS_MLFLOW_PORT=str(port + 1), FLOPS_DATA_SERVER_PORT=str(port + 2),
    )  # fmt: skip
    manager.start(timeout=240)
    return manager


def create_project(url: str, workdir: Path, *, wait: bool, timeout: float) -> dict[str, Any]:
    """Push mock data, create a sklearn-digits project (3 learners, 3 rounds), maybe await it."""
    repo = workdir / "sklearn-digits"
    shutil.copytree(ROOT / "examples" / "sklearn-digits", repo)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@bench.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "example"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    api = httpx.Client(base_url=f"{url}/api/flops", headers=ADMIN, timeout=300)
    with api:
        mocks = {"customerID": "Admin", "mock_data_configuration": {
            "dataset_name": "digits", "number_of_partitions": 3, "data_tag": "digits"}}  # fmt: skip
        api.post("/mocks", json=mocks).raise_for_status()
        body = {"customerID": "Admin", "ml_repo_url": f"file://{repo}",
                "ml_model_flavor": "sklearn", "training_configuration": {
                    "data_tags": ["digits"], "training_rounds": 3, "min_available_clients": 3,
                    "min_fit_clients": 3, "min_evaluate_clients": 3}}  # fmt: skip
        project_id = api.post("/projects", json=body).raise_for_status().json()["id"]
        project: dict[str, Any] = eventually(
            lambda: api.get(f"/projects/{project_id}").json(),
            f"project {project_id} finished", timeout, interval=1.0,
            until=lambda project: not wait or project["state"] in FINAL,
        )  # fmt: skip
    if wait and project["state"] != "completed":
        raise RuntimeError(f"project {project_id} ended {project['state']}: {project['message']}")
    return project


async def _request(client: httpx.AsyncClient, endpoint: Endpoint, record: bool) -> None:
    started = time.perf_counter()
    try:
        response = await client.get(endpoint.path, headers=endpoint.headers)
    except httpx.HTTPError as e:
        endpoint.errors.append(f"{type(e).__name__}: {e}")
        return
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        endpoint.errors.append(f"HTTP {response.status_code}: {response.text[:60]}")
    elif record:
        endpoint.latencies.append(elapsed)


async def load(url: str, pid: int, endpoints: list[Endpoint], args: argparse.Namespace) -> None:
    """One warm-up wave per endpoint, then `args.waves` measured waves each, taking turns.

    The `args.concurrency` connections are split over `args.clients` AsyncClients: one pool
    holding all 200 makes httpcore scan every connection for every queued request, and the
    client then needs several times the server's CPU on the same two cores (see README). An
    endpoint's `probe` goes out with each of its measured waves, on a client of its own.
    """
    per_client = math.ceil(args.concurrency / args.clients)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    tls = ssl.create_default_context()  # plain http here; built once rather than per client
    async with contextlib.AsyncExitStack() as stack:
        make = partial(httpx.AsyncClient, base_url=url, limits=limits, timeout=300, verify=tls)
        count = min(args.clients, args.concurrency)
        clients = [await stack.enter_async_context(make()) for _ in range(count)]
        targets = [clients[i % len(clients)] for i in range(args.concurrency)]
        prober = await stack.enter_async_context(make())
        for wave in range(args.waves + 1):
            for endpoint in endpoints:
                record = wave > 0
                cpu, started = _server_cpu(pid), time.perf_counter()
                requests = [_request(c, endpoint, record) for c in targets]
                if endpoint.probe is not None and record:
                    requests.append(_request(prober, endpoint.probe, record))
                await asyncio.gather(*requests)
                if record:
                    endpoint.wall += time.perf_counter() - started
                    endpoint.server_cpu += _server_cpu(pid) - cpu
                else:
                    endpoint.errors.clear()  # warm-up: connections, caches, lazy imports


def single(url: str, endpoints: list[Endpoint], repeats: int) -> None:
    """`repeats` requests to each endpoint one after the other (taking turns), nothing else."""
    with httpx.Client(base_url=url, timeout=300) as client:
        for endpoint in endpoints:  # warm-up
            client.get(endpoint.path, headers=endpoint.headers)
        for _ in range(repeats):
            for endpoint in endpoints:
                started = time.perf_counter()
                response = client.get(endpoint.path, headers=endpoint.headers)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    endpoint.errors.append(f"HTTP {response.status_code}: {response.text[:60]}")
                else:
                    endpoint.latencies.append(elapsed)


def report(
    endpoints: list[Endpoint], singles: list[Endpoint], client_cpu: float, log: Path
) -> None:
    """Print the tables, the errors (client side and in the manager's `log`), the ratios."""
    base = endpoints[0]
    print(f"\n{'endpoint':<34}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'req/s':>7}{'server CPU ms/req':>18}{'p50 x':>7}{'p99 x':>7}")  # fmt: skip
    total = sum(len(e.latencies) + len(e.errors) for e in endpoints)
    for e in endpoints:
        n = len(e.latencies) + len(e.errors)
        p50, p99 = e.percentile(50), e.percentile(99)
        rate = f"{n / e.wall:>7.0f}" if e.wall else f"{'':>7}"
        cpu = f"{e.server_cpu * 1000 / n:>18.2f}" if e.wall else f"{'':>18}"
        print(
            f"{e.name:<34}{n:>9}{len(e.errors):>7}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}"
            f"{max(e.latencies, default=float('nan')) * 1000:>9.1f}{rate}{cpu}"
            f"{p50 / base.percentile(50):>7.2f}{p99 / base.percentile(99):>7.2f}"
        )
    if singles:
        one = singles[0]
        print(f"\none request at a time{'':<13}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'p50 x':>7}")  # fmt: skip
        for e in singles:
            print(
                f"{e.name:<34}{len(e.latencies):>9}{e.percentile(50) * 1000:>9.2f}"
                f"{e.percentile(99) * 1000:>9.2f}{e.percentile(50) / one.percentile(50):>7.2f}"
            )
    for e in [*endpoints, *singles]:
        for error, count in Counter(e.errors).most_common(3):
            print(f"errors on {e.name}: {count} x {error}")
    exception = re.compile(r"^[\w.]+(?:Error|Exception): .{0,110}")
    lines = log.read_text(errors="replace").splitlines()
    for error, count in Counter(m[0] for x in lines if (m := exception.match(x))).most_common(3):
        print(f"manager log (whole run): {count} x {error}")
    print(f"load generator CPU: {client_cpu * 1000 / total:.2f} ms per request "
          f"({client_cpu:.1f} s; client and server share {os.cpu_count()} cores)")  # fmt: skip
    for e in endpoints[1:]:
        p50 = e.percentile(50) / base.percentile(50)
        p99 = e.percentile(99) / base.percentile(99)
        print(f"{e.name} vs /whoami: p50 ratio {p50:.2f}, p99 ratio {p99:.2f}")
    if singles:
        ratio = singles[1].percentile(50) / singles[0].percentile(50)
        print(f"one {singles[1].name} vs one /whoami: p50 ratio {ratio:.2f}")


def benchmark(args: argparse.Namespace, workdir: Path) -> bool:
    """Start the manager, create the project, load, report, stop all; False on any error."""
    started = time.monotonic()
    env = {k: v for k, v in child_env(native_threads=1).items() if not k.startswith("FLOPS_")}
    # PYTHONPATH first: `PYTHONPATH=<other checkout>` measures that checkout's manager.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    data_dir = workdir / "data"
    manager: ManagerProcess | None = None
    try:
        print(f"writing {args.projects} finished projects into the database ...")
        seed_projects(data_dir, args.projects)
        print("starting the manager ...")
        manager = start_manager(workdir, env)
        url = manager.url
        how = "created, not awaited" if args.skip_project else "running it to completed"
        print(f"pushing mock data, creating a project (3 learners, 3 rounds; {how}) ...")
        project = create_project(
            url, workdir, wait=not args.skip_project, timeout=args.project_timeout
        )
        size = len(httpx.get(f"{url}/api/flops/projects/{project['id']}", headers=ADMIN).content)
        print(f"project {project['id']}: {project['state']}, {project['events']} events, "
              f"{len(project['services'])} services, response {size} bytes")  # fmt: skip
        one = f"/api/flops/projects/{project['id']}"
        listed = httpx.get(f"{url}/api/flops/projects", headers=ADMIN, timeout=300)
        print(f"GET /projects: {len(listed.json())} projects listed of "
              f"{listed.headers.get('X-Total-Count', len(listed.json()))}, "
              f"response {len(listed.content)} bytes")  # fmt: skip
        amid = Endpoint("GET /projects/{id} amid the lists", one, ADMIN)
        endpoints = [
            Endpoint("GET /whoami (baseline)", "/api/flops/whoami", ADMIN),
            Endpoint("GET /projects/{id}", one, ADMIN),
            Endpoint("GET /projects (list)", "/api/flops/projects", ADMIN, probe=amid),
        ]
        health = Endpoint("GET /health (no token)", "/api/flops/health", {})
        singles = [
            Endpoint("GET /whoami", "/api/flops/whoami", ADMIN),
            Endpoint("GET /projects (list)", "/api/flops/projects", ADMIN),
        ]
        print(f"{args.single} single requests each to /whoami and the list, in turns ...")
        single(url, singles, args.single)
        print(
            f"{args.waves} waves x {args.concurrency} concurrent requests per endpoint "
            f"({args.clients} clients); /whoami, /projects/{{id}} and /projects in turns, "
            "then /health ..."
        )
        cpu = time.process_time()
        assert manager.process is not None
        asyncio.run(load(url, manager.process.pid, endpoints, args))
        # Apart: its slow waves would leave idle connections that uvicorn closes after 5 s.
        asyncio.run(load(url, manager.process.pid, [health], args))
        client_cpu = time.process_time() - cpu
    finally:
        if manager is not None:
            manager.stop(grace=30)  # uvicorn first waits for the requests in progress
    report([*endpoints, amid, health], singles, client_cpu, workdir / "manager.log")
    print(f"total benchmark time: {time.monotonic() - started:.0f} s")
    if failed := any(e.errors for e in [*endpoints, amid, health, *singles]):
        print(f"the manager's log is kept: {workdir / 'manager.log'}")
    return not failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200, help="requests in flight")
    parser.add_argument("--waves", type=int, default=10, help="measured waves per endpoint")
    parser.add_argument("--clients", type=int, default=200, help="AsyncClients (see README)")
    parser.add_argument("--projects", type=int, default=1000, help="finished projects in the DB")
    parser.add_argument("--single", type=int, default=40, help="sequential requests each")
    parser.add_argument("--skip-project", action="store_true", help="do not await training")
    parser.add_argument("--project-timeout", type=float, default=600.0, help="seconds")
    args = parser.parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop every child, also when backgrounded
        signal.signal(signum, signal.default_int_handler)
    workdir = Path(mkdtemp(prefix="flops-bench-api-"))
    try:
        clean = benchmark(args, workdir)
    except KeyboardInterrupt:
        sys.exit(f"interrupted; logs in {workdir}")
    except (RuntimeError, httpx.HTTPError, subprocess.CalledProcessError) as e:
        sys.exit(f"error: {e}\nlogs in {workdir}")
    if clean:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
