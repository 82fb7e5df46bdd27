"""`flops demo`: a complete FL project on this machine through a manager of its own.

The demo starts `python -m flops_manager` as a child process (its own process group) with a
data directory, free ports and an admin token of its own, waits for it to be healthy, pushes
scikit-learn's digits to the learner nodes, makes a Git repo of `examples/sklearn-digits`,
creates a project from it and follows it to the end. Whatever happens (failure, Ctrl-C,
SIGTERM) the manager is stopped before the demo returns, unless `--keep` asked to leave it up
until Ctrl-C.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import FrameType

from rich.markup import escape

from flops_cli.client import ManagerClient, ManagerError
from flops_cli.manager_process import DemoError, ManagerProcess, choose_ports
from flops_cli.server import ensure_admin_token
from flops_cli.ui import console, err_console
from flops_cli.watch import watch_project

__all__ = ["EXAMPLE", "make_git_repo", "run_demo"]

#: The ML repo the demo trains (a FLOps checkout's `examples/sklearn-digits`).
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sklearn-digits"
DATA_TAG = "digits"


def make_git_repo(source: Path, target: Path) -> str:
    """Copy `source` to `target`, commit it as a new Git repo and return its `file://` URL.

    Parameters
    ----------
    source : Path
        An ML repo folder (no `.git` needed).
    target : Path
        Where the repo is made; must not exist yet.
    """
    if not (source / "model_manager.py").is_file():
        raise DemoError(f"{source} has no model_manager.py; run the demo from a FLOps checkout")
    if shutil.which("git") is None:
        raise DemoError("the demo needs git to make a repo of the example; install git")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    identity = ["-c", "user.name=FLOps demo", "-c", "user.email=demo@flops.invalid"]
    for command in (
        ["git", "-c", "init.defaultBranch=main", "init", "-q"],
        ["git", "add", "-A"],
        ["git", *identity, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "FLOps demo"],
    ):
        done = subprocess.run(command, cwd=target, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DemoError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return target.as_uri()


def run_demo(*, rounds: int, learners: int, keep: bool, data_dir: Path | None) -> int:
    """Run the demo and return the exit status: 0 completed, 1 failed, 130 interrupted.

    Parameters
    ----------
    rounds : int
        Training rounds.
    learners : int
        Learners, data partitions and minimum clients.
    keep : bool
        Leave the manager running until Ctrl-C after the project ends.
    data_dir : Path | None
        The manager's data directory; default a new temporary one, removed after a
        successful run without `keep` (kept after a failure, for its logs).
    """
    began = time.monotonic()
    temporary = data_dir is None
    try:
        workdir = (data_dir or Path(tempfile.mkdtemp(prefix="flops-demo-"))).expanduser()
        workdir = workdir.absolute()
        workdir.mkdir(parents=True, exist_ok=True)
        token, _ = ensure_admin_token(workdir)
        ports = choose_ports(learners)
    except (OSError, DemoError) as e:
        err_console.print(f"[red]Demo failed:[/] {escape(str(e))}", highlight=False)
        return 1
    manager = ManagerProcess(data_dir=workdir, ports=ports, token=token, nodes=learners)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    status = 1
    try:
        console.print(f"[bold]FLOps demo[/] in {escape(str(workdir))}", highlight=False)
        with ManagerClient(manager.url, token) as client:
            status = _run(client, manager, rounds=rounds, learners=learners, keep=keep, began=began)
            if keep:
                _stay_up(manager, workdir)
    except (DemoError, ManagerError, OSError) as e:
        err_console.print(f"[red]Demo failed:[/] {escape(str(e))}", highlight=False)
        status = 1
    except KeyboardInterrupt:
        err_console.print("Interrupted: stopping the manager")
        status = 130
    finally:
        if manager.running:
            with console.status("Stopping the manager…"):
                manager.stop()
        signal.signal(signal.SIGTERM, previous)
    if status != 0:
        err_console.print(f"The manager's log: {manager.log_path}", highlight=False)
    elif keep:
        console.print(f"Manager stopped; its data stays in {workdir}", highlight=False)
    elif temporary:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def _run(
    client: ManagerClient,
    manager: ManagerProcess,
    *,
    rounds: int,
    learners: int,
    keep: bool,
    began: float,
) -> int:
    with console.status("Starting the manager…") as spinner:
        manager.start()
        manager.wait_ready(
            client, on_status=lambda text: spinner.update(f"Starting the manager: {text}")
        )
    ready = time.monotonic()
    console.print(f"Manager at {manager.url}, ready in {ready - began:.1f} s", highlight=False)
    with console.status(f"Pushing digits to {learners} learner nodes…"):
        _push_digits(client, learners)
    console.print(f"Digits in {learners} partitions under data tag {DATA_TAG!r}", highlight=False)
    repo_url = make_git_repo(EXAMPLE, manager.data_dir / "repos" / EXAMPLE.name)
    body = {
        "customerID": "Admin",
        "ml_repo_url": repo_url,
        "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": [DATA_TAG],
            "training_rounds": rounds,
            "learners": learners,
            "min_available_clients": learners,
            "min_fit_clients": learners,
            "min_evaluate_clients": learners,
        },
    }
    created = client.create_project(body)
    console.print(f"Project {created['id']} from {repo_url}", highlight=False)
    submitted = time.monotonic()
    outcome = watch_project(client, created["id"], console)
    if outcome.exit_code != 0:
        return outcome.exit_code
    accuracy = outcome.last_metrics.get("accuracy")
    if isinstance(accuracy, int | float):
        console.print(
            f"Final accuracy (round {outcome.rounds_completed}): {accuracy:.4f}", highlight=False
        )
    result = outcome.project.get("result") if outcome.project is not None else None
    if not (result or {}).get("tracking_url"):
        console.print(f"MLflow: {client.tracking()}", highlight=False)
    if not keep:
        console.print("(MLflow stops with the demo; `flops demo --keep` keeps it up)")
    end = time.monotonic()
    console.print(
        f"Demo took {end - began:.1f} s: manager {ready - began:.1f} s, project "
        f"{end - submitted:.1f} s",
        highlight=False,
    )
    return 0


def _push_digits(client: ManagerClient, learners: int, timeout: float = 120.0) -> None:
    """Push the partitions; retry while the data servers are still coming up (503)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_mock_data(dataset="digits", partitions=learners, tag=DATA_TAG)
            return
        except ManagerError as e:
            if e.status_code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(1.0)


def _stay_up(manager: ManagerProcess, workdir: Path) -> None:
    console.print(
        f"The manager stays up at {manager.url}; its data is in {workdir}. Other flops "
        f"commands reach it with: FLOPS_DATA_DIR={workdir} flops --url {manager.url} ...\n"
        "Press Ctrl-C to stop it.",
        highlight=False,
    )
    try:
        while manager.running:
            time.sleep(1.0)
    except KeyboardInterrupt:
        return
    raise DemoError("the manager stopped by itself")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: unwind like Ctrl-C so that the manager is stopped."""
    raise KeyboardInterrupt
