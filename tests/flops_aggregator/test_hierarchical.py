"""Hierarchical FL end to end: a root aggregator, cluster aggregators and their learners."""

from __future__ import annotations

import time
import uuid

import pytest
from mlflow.tracking import MlflowClient

from flops_core.mlflow_server import MlflowServer
from tests.conftest import EventReceiver, free_port
from tests.e2e.conftest import EXAMPLES, Proc, Processes

pytestmark = pytest.mark.e2e

REPO = EXAMPLES / "sklearn-digits"


def _aggregator(procs: Processes, name: str, project: str, port: int, *options: str) -> Proc:
    return procs.start(
        name, "-m", "flops_aggregator", "--project-id", project, "--repo-dir", str(REPO),
        "--address", f"127.0.0.1:{port}", *options,
    )  # fmt: skip


def _clients(count: int) -> list[str]:
    n = str(count)
    return ["--min-available-clients", n, "--min-fit-clients", n, "--min-evaluate-clients", n]


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _of(events: EventReceiver, project: str, source: str, kind: str) -> list[dict]:
    return [
        e
        for e in events.events
        if e["project_id"] == project and e["source"] == source and e["type"] == kind
    ]


def test_root_with_two_clusters_trains_like_classic(
    procs: Processes, data_server_4: str, mlflow_server: MlflowServer, events: EventReceiver
) -> None:
    # Prepare: one data partition per learner, the same four for both runs
    hierarchical, classic = f"h{uuid.uuid4().hex[:10]}", f"c{uuid.uuid4().hex[:10]}"
    tracking = ["--mlflow-uri", mlflow_server.url, "--callback-url", events.url]
    root_port, classic_port = free_port(), free_port()

    # Execute: both runs at once (they share nothing but the data and MLflow servers)
    root = _aggregator(
        procs, "root", hierarchical, root_port, "--hierarchy", "root", "--rounds", "2",
        *_clients(2), *tracking, "--connect-timeout", "90",
    )  # fmt: skip
    clusters: list[Proc] = []
    learners: list[Proc] = []
    for c, name in enumerate(("alpha", "beta")):
        port = free_port()
        options = ["--hierarchy", "cluster", "--cluster", name, "--rounds", "2",
                   "--root-address", f"127.0.0.1:{root_port}",
                   "--connect-timeout", "90"]  # fmt: skip
        cluster = _aggregator(
            procs, f"cluster-{name}", hierarchical, port, *options, *_clients(2), *tracking
        )
        clusters.append(cluster)
        learners += [
            procs.learner(f"{name}-l{i}", REPO, port, data_server_4, f"digits-{i}")
            for i in (2 * c, 2 * c + 1)
        ]
    baseline = _aggregator(
        procs, "classic", classic, classic_port, "--rounds", "4", *_clients(4), *tracking,
        "--connect-timeout", "90",
    )  # fmt: skip
    learners += [
        procs.learner(f"classic-l{i}", REPO, classic_port, data_server_4, f"digits-{i}")
        for i in range(4)
    ]

    # Assert: every process ends cleanly
    for proc in (root, *clusters, baseline, *learners):
        assert proc.wait(150) == 0, f"{proc.name}:\n{proc.output()}"
    client = MlflowClient(mlflow_server.url)
    # Assert: the root logged one step per cycle, is tagged, and registered the model
    succeeded = _of(events, hierarchical, "aggregator", "succeeded")[0]["data"]
    root_run = client.get_run(succeeded["mlflow_run_id"])
    assert root_run.data.tags["flops.mode"] == "hierarchical"
    assert root_run.data.tags["flops.role"] == "root_aggregator"
    root_accuracy = _history(client, root_run.info.run_id, "accuracy")
    assert [step for step, _ in root_accuracy] == [1, 2]
    assert [step for step, _ in _history(client, root_run.info.run_id, "examples")] == [1, 2]
    assert succeeded["model"]["version"] == "1"
    # Assert: each cluster has its own run, a child of the root's, with steps 1..4
    children = client.search_runs(
        [root_run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{root_run.info.run_id}'",
    )
    assert sorted(run.data.tags["flops.cluster"] for run in children) == ["alpha", "beta"]
    for run in children:
        assert run.data.tags["flops.role"] == "cluster_aggregator"
        assert run.data.tags["flops.mode"] == "hierarchical"
        assert run.data.tags["flops.project_id"] == hierarchical
        assert run.info.status == "FINISHED"
        steps = [step for step, _ in _history(client, run.info.run_id, "accuracy")]
        assert steps == [1, 2, 3, 4]
    # Assert: the clusters reported their rounds by cycle, and no model
    for name in ("alpha", "beta"):
        source = f"cluster:{name}"
        assert _of(events, hierarchical, source, "started")
        rounds = _of(events, hierarchical, source, "round_completed")
        assert [(e["data"]["cycle"], e["data"]["round"]) for e in rounds] == [
            (1, 1), (1, 2), (2, 1), (2, 2),
        ]  # fmt: skip
        assert all(e["data"]["cluster"] == name for e in rounds)
        done = _of(events, hierarchical, source, "succeeded")[0]["data"]
        assert done["cycles"] == 2 and "model" not in done
    assert not client.search_registered_models(f"name = 'flops-{hierarchical}-cluster'")
    # Assert: as accurate as classic FL with the same learners, data and total rounds
    classic_run = _of(events, classic, "aggregator", "succeeded")[0]["data"]["mlflow_run_id"]
    classic_accuracy = _history(client, classic_run, "accuracy")
    assert [step for step, _ in classic_accuracy] == [1, 2, 3, 4]
    assert abs(root_accuracy[-1][1] - classic_accuracy[-1][1]) <= 0.03, (
        root_accuracy,
        classic_accuracy,
    )


def test_cluster_without_learners_fails_within_its_connect_timeout(
    procs: Processes, events: EventReceiver
) -> None:
    # Prepare: a root expecting one cluster, and that cluster with no learners
    project, root_port = f"e{uuid.uuid4().hex[:10]}", free_port()
    root = _aggregator(
        procs, "root", project, root_port, "--hierarchy", "root", "--rounds", "2",
        "--callback-url", events.url, "--connect-timeout", "60",
    )  # fmt: skip

    # Execute
    started = time.monotonic()
    cluster = _aggregator(
        procs, "cluster-empty", project, free_port(), "--hierarchy", "cluster",
        "--cluster", "empty", "--root-address", f"127.0.0.1:{root_port}",
        "--callback-url", events.url, "--connect-timeout", "5",
    )  # fmt: skip

    # Assert: the cluster says which cluster lacks learners, and the root's round fails
    assert cluster.wait(60) == 1, cluster.output()
    assert time.monotonic() - started < 5 + 25
    failed = events.wait_for("failed", lambda e: e["source"] == "cluster:empty")
    assert failed["data"]["reason"].startswith("cluster empty: no learner connected within 5 s")
    assert root.wait(60) == 1, root.output()
    reason = events.wait_for("failed", lambda e: e["source"] == "aggregator")["data"]["reason"]
    assert "round 1: 0 learners returned training results, 1 needed" in reason
