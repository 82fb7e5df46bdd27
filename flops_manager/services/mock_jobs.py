"""Mock-data jobs: split a dataset, push the partitions to data servers, drop them on delete.

A job is persisted at once in `pending` and then run by `MockJobs.run` (in the request's
worker thread, or as a background task with `?wait=false`): `running`, for a Hugging Face
hub dataset one event when its download starts and one when it is loaded (rows, columns),
one event for the partitioning (sizes and the label-skew measure), one per partition pushed
(node, data server, rows, label histogram), then `completed`. Any failure, and a `DELETE`
while it runs (which also stops a hub download), drops what was pushed before the job ends
as `failed` or `cancelled`, so that no partial partitions stay behind. Deleting a finished
job drops its partitions and marks it `deleted`. Jobs run only in this process: one left
`pending`/`running` by a previous manager is ended as `failed` (its partitions dropped
where possible) when `MockJobs` is created.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy import select

from flops_core.errors import FlopsError
from flops_core.logs import get_logger
from flops_core.mock_data import (
    label_histogram,
    mean_pairwise_total_variation,
    partition_dirichlet,
    partition_iid,
)
from flops_manager.db import Database
from flops_manager.db.models import MockDataJob, MockDataJobEvent, utcnow
from flops_manager.lifecycle.embedded_stack import StackError
from flops_manager.schemas.mock_data import (
    ACTIVE_MOCK_STATES,
    DirichletPartitioning,
    MockDataRequest,
    MockJobState,
)
from flops_manager.services.mock_datasets import RequestedDataset
from flops_manager.services.mock_job_records import (
    MockDataCleanupError,
    MockJobConflictError,
    MockJobNotFoundError,
    create_job,
    event_view_of,
    get_job,
    job_view,
    list_jobs,
    stored_tag_of,
)
from flops_manager.services.node_data_servers import NodeDataServers, NoLearnerNodeError
from flops_utils.ml_data_client import DatasetNotFoundError, MLDataClient, MLDataError

__all__ = [
    "MEASURE_NAME",
    "DataServers",
    "MockDataCleanupError",
    "MockJobConflictError",
    "MockJobNotFoundError",
    "MockJobs",
    "create_job",
    "event_view_of",
    "get_job",
    "job_view",
    "list_jobs",
]

_log = get_logger("manager.mocks")

#: The label-skew measure each job reports, from 0 (same label mix) to 1 (disjoint labels).
MEASURE_NAME = "mean_pairwise_total_variation"
_CANCEL_WAIT_S = 60.0
#: Seconds a data server may take to answer a listing, and to take one partition.
_ANSWER_S, _PUSH_S = 10.0, 120.0


class DataServers(Protocol):
    """Where partitions go: partition i to node i mod `nodes` (the embedded stack is one, and
    `NodeDataServers`, the registered nodes' own, another)."""

    @property
    def nodes(self) -> int:
        """How many nodes take partitions."""

    def ensure_started(self) -> None:
        """Start the data servers if they are not running, and wait until they answer."""

    def data_server(self, node: int) -> str:
        """Address of node `node`'s data server."""


class MockJobs:
    """Runs this manager's mock-data jobs and deletes them; one per app.

    Parameters
    ----------
    database : Database
        Where jobs and their events are persisted.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._recover()

    def accept(self, job_id: str) -> None:
        """Register a new job, so that a `DELETE` can cancel it before it starts."""
        with self._lock:
            self._cancel[job_id] = threading.Event()
            self._done[job_id] = threading.Event()

    def run(
        self,
        job_id: str,
        *,
        dataset: RequestedDataset,
        request: MockDataRequest,
        servers: DataServers,
    ) -> tuple[MockJobState, bool]:
        """Load the dataset, split it, push the partitions and record every step.

        Returns when the job is final: the final state, and whether a failure may go away on
        a retry (a data server or the hub that cannot be reached yet).

        Parameters
        ----------
        job_id : str
            A job `accept`ed before.
        dataset : RequestedDataset
            The dataset, checked; a hub dataset is downloaded here (cancelled by a DELETE).
        request : MockDataRequest
            The request body (partitions, tag, partitioning).
        servers : DataServers
            Where partition i goes.
        """
        cancel = self._cancel.get(job_id) or threading.Event()
        pushed: list[dict[str, Any]] = []
        try:
            tag = self._stored_tag(job_id)
            self._transition(job_id, MockJobState.RUNNING, "partitioning and pushing")
            if dataset.hub_repo is not None:
                self._record(
                    job_id,
                    "dataset_loading",
                    f"loading {dataset.hub_repo} from the Hugging Face hub",
                    data={"dataset_name": dataset.name, "hub_repo": dataset.hub_repo},
                )
            loaded = dataset.load(cancel)
            table, label_column = loaded.table, loaded.label_column
            if dataset.hub_repo is not None:
                self._record(
                    job_id,
                    "dataset_loaded",
                    f"loaded {table.num_rows} rows of {dataset.hub_repo}",
                    data={"rows": table.num_rows, "columns": table.column_names},
                )
            parts = _partition(table, label_column, request)
            histograms = [label_histogram(p, label_column) if label_column else {} for p in parts]
            measure = {
                "name": MEASURE_NAME,
                "value": round(mean_pairwise_total_variation(histograms), 4),
            }
            if label_column is None:
                measure = {"name": MEASURE_NAME, "value": None}
            self._record(
                job_id,
                "partitioned",
                f"{len(parts)} partitions",
                measure=measure,
                data={**measure, "sizes": [p.num_rows for p in parts]},
            )
            servers.ensure_started()
            for i, (part, histogram) in enumerate(zip(parts, histograms, strict=True)):
                if cancel.is_set():
                    break
                address = servers.data_server(i)
                with MLDataClient(address, timeout=_ANSWER_S, transfer_timeout=_PUSH_S) as client:
                    name = client.push_table(tag, part)
                entry = {
                    "partition": i,
                    "node": _node_of(servers, i),
                    "data_server": address,
                    "dataset": name,
                    "rows": part.num_rows,
                    "label_histogram": histogram,
                }
                pushed.append(entry)
                self._record(
                    job_id,
                    "partition_pushed",
                    f"partition {i}: {part.num_rows} rows to node {entry['node']}",
                    data=entry,
                    partition=entry,
                )
            if isinstance(servers, NodeDataServers) and not cancel.is_set():
                servers.await_reports(tag, {str(entry["node"]) for entry in pushed})
        except Exception as e:
            if cancel.is_set():
                self._drop(job_id, pushed, best_effort=True)
                self._transition(job_id, MockJobState.CANCELLED, "cancelled by a DELETE")
                return MockJobState.CANCELLED, False
            reason = (
                str(e)
                if isinstance(e, MLDataError | StackError | NoLearnerNodeError | ValueError)
                else (f"{type(e).__name__}: {e}")
            )
            # FLOps errors and the SDK's data-client errors (a tree of its own) say it.
            retryable = isinstance(e, FlopsError | MLDataError) and e.retryable
            _log.warning("mock-data job %s failed: %s", job_id, reason)
            self._drop(job_id, pushed, best_effort=True)
            self._transition(job_id, MockJobState.FAILED, f"failed: {reason}")
            return MockJobState.FAILED, retryable
        else:
            if cancel.is_set():
                self._drop(job_id, pushed, best_effort=True)
                self._transition(job_id, MockJobState.CANCELLED, "cancelled by a DELETE")
                return MockJobState.CANCELLED, False
            rows = sum(p["rows"] for p in pushed)
            self._transition(
                job_id,
                MockJobState.COMPLETED,
                f"pushed {len(pushed)} partitions ({rows} rows) under tag "
                f"{request.mock_data_configuration.data_tag} (stored as {tag})",
            )
            return MockJobState.COMPLETED, False
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
                done = self._done.pop(job_id, None)
            if done is not None:
                done.set()

    def delete(self, job_id: str) -> MockJobState:
        """Cancel a running job, or drop a finished job's partitions and mark it `deleted`.

        Returns the job's new state: `cancelled` or `deleted`.

        Raises
        ------
        MockJobConflictError
            The job is already cancelled or deleted.
        MockDataCleanupError
            A data server could not drop a partition; the job keeps the rest recorded.
        """
        with self._lock:
            cancel, done = self._cancel.get(job_id), self._done.get(job_id)
        if cancel is not None and done is not None:
            cancel.set()
            done.wait(_CANCEL_WAIT_S)
        with self._database.session() as session:
            job = session.get(MockDataJob, job_id)
            if job is None:
                raise MockJobNotFoundError(job_id)
            state = MockJobState(job.state)
            partitions = [p for p in job.partitions if not p.get("dropped")]
        if state is MockJobState.CANCELLED and cancel is not None:
            return state  # this DELETE cancelled it; the run dropped what it had pushed
        if state in (MockJobState.CANCELLED, MockJobState.DELETED):
            raise MockJobConflictError(f"mock-data job {job_id} is already {state.value}")
        if state in ACTIVE_MOCK_STATES:
            raise MockJobConflictError(
                f"mock-data job {job_id} is still {state.value}; try again when it has ended"
            )
        self._drop(job_id, partitions, best_effort=False)
        self._transition(
            job_id,
            MockJobState.DELETED,
            f"deleted; dropped {len(partitions)} partitions from the data servers",
        )
        return MockJobState.DELETED

    def _stored_tag(self, job_id: str) -> str:
        """The data servers' tag of the job's partitions: in its owner's namespace."""
        with self._database.session() as session:
            job = session.get(MockDataJob, job_id)
            if job is None:
                raise MockJobNotFoundError(job_id)
            return stored_tag_of(job)

    def _recover(self) -> None:
        with self._database.session() as session:
            stale = list(
                session.scalars(
                    select(MockDataJob).where(
                        MockDataJob.state.in_([s.value for s in ACTIVE_MOCK_STATES])
                    )
                )
            )
            leftovers = {
                job.id: [p for p in job.partitions if not p.get("dropped")] for job in stale
            }
        for job_id, partitions in leftovers.items():
            self._drop(job_id, partitions, best_effort=True, timeout=5.0)
            self._transition(
                job_id, MockJobState.FAILED, "failed: the manager stopped while this job ran"
            )

    def _drop(
        self,
        job_id: str,
        partitions: list[dict[str, Any]],
        *,
        best_effort: bool,
        timeout: float = 30.0,
    ) -> None:
        """Drop `partitions` from their data servers; each drop is recorded as an event."""
        for entry in partitions:
            try:
                with MLDataClient(entry["data_server"], timeout=timeout) as client:
                    client.drop_dataset(entry["dataset"])
            except DatasetNotFoundError:
                pass  # already gone: what a drop wants
            except MLDataError as e:
                _log.warning("mock-data job %s: could not drop %s: %s", job_id, entry["dataset"], e)
                if not best_effort:
                    raise MockDataCleanupError(
                        f"could not drop partition {entry['partition']} of mock-data job "
                        f"{job_id}: {e}"
                    ) from e
                continue
            self._record(
                job_id,
                "partition_dropped",
                f"partition {entry['partition']} dropped",
                data={k: entry[k] for k in ("partition", "data_server", "dataset")},
                dropped=entry["dataset"],
            )

    def _record(
        self,
        job_id: str,
        event_type: str,
        message: str,
        *,
        data: dict[str, Any],
        measure: dict[str, Any] | None = None,
        partition: dict[str, Any] | None = None,
        dropped: str | None = None,
    ) -> None:
        with self._database.session() as session:
            job = session.get(MockDataJob, job_id)
            if job is None:
                return
            if measure is not None:
                job.measure = measure
            if partition is not None:
                job.partitions = [*job.partitions, partition]
            if dropped is not None:
                job.partitions = [
                    {**p, "dropped": True} if p["dataset"] == dropped else p for p in job.partitions
                ]
            job.events.append(
                MockDataJobEvent(kind="event", type=event_type, message=message, data=data)
            )

    def _transition(self, job_id: str, state: MockJobState, message: str) -> None:
        with self._database.session() as session:
            job = session.get(MockDataJob, job_id)
            if job is None:
                return
            job.state, job.message = state.value, message
            if state not in ACTIVE_MOCK_STATES:
                job.finished_at = utcnow()
            job.events.append(MockDataJobEvent(kind="state", type=state.value, message=message))
        _log.info("mock-data job %s: %s (%s)", job_id, state.value, message)


def _node_of(servers: DataServers, partition: int) -> int | str:
    """The node a partition goes to, as its events name it: a registered node's name, or the
    index of one of the embedded default's nodes."""
    if isinstance(servers, NodeDataServers):
        return servers.node_name(partition)
    return partition % servers.nodes


def _partition(
    table: pa.Table, label_column: str | None, request: MockDataRequest
) -> list[pa.Table]:
    partitions = request.mock_data_configuration.number_of_partitions
    how = request.partitioning
    if isinstance(how, DirichletPartitioning):
        if label_column is None:
            raise ValueError("Dirichlet partitioning needs a label column")
        return partition_dirichlet(
            table,
            partitions,
            alpha=how.alpha,
            label_column=label_column,
            seed=how.seed,
            min_size=how.min_size,
        )
    return partition_iid(table, partitions, seed=how.seed)
