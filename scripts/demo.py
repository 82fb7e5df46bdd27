"""Run a complete FL project on this machine: the README's "run the demo" command.

Starts a lean MLflow tracking server and an ML data server, pushes scikit-learn's digits in
one partition per learner, then runs the FLOps aggregator and the learners on
`examples/sklearn-digits` as local processes, showing each round as it completes. Every process
it starts is stopped at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from flops_utils.event_receiver import EventReceiver
from flops_utils.ml_data_client import MLDataClient
from flops_utils.mlflow_server import start_mlflow_server
from flops_utils.mock_data import load_bundled_dataset, partition_iid

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=ROOT / "examples" / "sklearn-digits")
    parser.add_argument("--flavor", default="sklearn")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep MLflow up until Ctrl-C")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flops-demo-"))
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    children: list[subprocess.Popen[bytes]] = []
    project = f"demo{int(time.time())}"

    def start(name: str, *command: str) -> subprocess.Popen[bytes]:
        with (workdir / f"{name}.log").open("wb") as log:
            child = subprocess.Popen(
                [sys.executable, *command], stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        children.append(child)
        return child

    console.print(f"[bold]FLOps demo[/] — working directory {workdir}")
    mlflow = None
    receiver = None
    try:
        with console.status("Starting the MLflow tracking server…"):
            mlflow = start_mlflow_server(workdir / "mlflow", port=_free_port())
        console.print(f"MLflow tracking server: {mlflow.url}")
        data_port = _free_port()
        data_address = f"grpc://127.0.0.1:{data_port}"
        start("data-server", "-m", "flops_data_server", "serve", "--host", "127.0.0.1",
              "--port", str(data_port), "--data-dir", str(workdir / "ml-data"))  # fmt: skip
        tags = _push_partitions(data_address, args.learners)
        console.print(f"ML data server {data_address}: digits in {len(tags)} partitions")

        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=console,
        )  # fmt: skip
        task = progress.add_task("Training", total=args.rounds, info="waiting for learners")

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "round_completed":
                metrics = event["data"]["metrics"]
                info = f"round {event['data']['round']}: accuracy {metrics.get('accuracy', 0):.3f}"
                progress.update(task, completed=event["data"]["round"], info=info)

        receiver = EventReceiver(on_event=on_event)
        port = _free_port()
        aggregator = start(
            "aggregator", "-m", "flops_aggregator", "--project-id", project,
            "--repo-dir", str(args.repo), "--flavor", args.flavor, "--rounds", str(args.rounds),
            "--min-available-clients", str(args.learners),
            "--min-fit-clients", str(args.learners),
            "--min-evaluate-clients", str(args.learners),
            "--address", f"127.0.0.1:{port}", "--mlflow-uri", mlflow.url,
            "--callback-url", receiver.url, "--connect-timeout", "120",
        )  # fmt: skip
        for i, tag in enumerate(tags):
            start(f"learner-{i}", "-m", "flops_learner", "--project-id", project,
                  "--name", f"learner-{i}", "--repo-dir", str(args.repo),
                  "--aggregator", f"127.0.0.1:{port}", "--data-server", data_address,
                  "--data-tags", tag)  # fmt: skip
        with progress:
            code = aggregator.wait()
        if code != 0:
            reason = next((e["data"]["reason"] for e in receiver.of_type("failed")), "unknown")
            console.print(f"[red]Training failed:[/] {reason}\nLogs: {workdir}")
            return 1
        done = receiver.wait_for("succeeded", timeout=30)["data"]
        console.print(
            f"[green]Training completed.[/] Best round {done['best_round']}: "
            f"accuracy {done['metrics'].get('accuracy', 0):.3f}, "
            f"loss {done['metrics'].get('loss', 0):.3f}"
        )
        model = done["model"]
        console.print(f"Registered model: {model['name']} version {model['version']} (@champion)")
        console.print(f"MLflow: {mlflow.url}/#/experiments — logs in {workdir}")
        if args.keep:
            console.print("MLflow stays up; press Ctrl-C to stop.")
            signal.pause()
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        if receiver is not None:
            receiver.close()
        if mlflow is not None:
            mlflow.stop()


def _push_partitions(address: str, count: int) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with MLDataClient(address) as client:
                client.list_datasets()
                parts = partition_iid(load_bundled_dataset("digits"), count, seed=0)
                tags = [f"digits-{i}" for i in range(count)]
                for tag, part in zip(tags, parts, strict=True):
                    client.push_table(tag, part)
                return tags
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
