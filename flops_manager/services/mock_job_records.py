"""Mock-data job records: who may see which, and their JSON form (the API's side)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flops_core.errors import PermanentError, TemporaryError
from flops_manager.core.data_tags import SHARED_PREFIX, is_shared, stored_data_tag
from flops_manager.db.models import MockDataJob, MockDataJobEvent, iso_utc
from flops_manager.schemas.mock_data import ACTIVE_MOCK_STATES, MockDataRequest, MockJobState
from flops_manager.services.tokens import ADMIN_CUSTOMER_ID, Caller

__all__ = [
    "MockDataCleanupError",
    "MockJobConflictError",
    "MockJobNotFoundError",
    "create_job",
    "event_view_of",
    "get_job",
    "job_view",
    "list_jobs",
    "stored_tag_of",
]


class MockJobNotFoundError(PermanentError, LookupError):
    """Raised when a mock-data job does not exist or belongs to another customer."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"mock-data job {job_id} not found")
        self.job_id = job_id


class MockJobConflictError(PermanentError, RuntimeError):
    """Raised when a request does not fit the job's state (delete a deleted job); safe message."""


class MockDataCleanupError(TemporaryError, RuntimeError):
    """Raised when pushed partitions cannot be dropped (data server unreachable); retryable."""


def create_job(*, session: Session, caller: Caller, body: MockDataRequest) -> MockDataJob:
    """Persist a new job in `pending` for the caller's customer (the admin may name any).

    The data goes under the owner's namespace (`stored_data_tag`); only the admin, as customer
    `Admin`, may push the shared data `shared:<tag>`.

    Raises
    ------
    PermissionError
        `customerID` names another customer and the caller is not the admin, or the tag is
        `shared:<tag>` and the job is not the admin's own.
    """
    customer = body.customer_id
    if not caller.is_admin:
        if "customer_id" in body.model_fields_set and customer != caller.customer_id:
            raise PermissionError(f"customerID {customer!r} does not match the token's customer")
        customer = caller.customer_id
    tag = body.mock_data_configuration.data_tag
    if is_shared(tag) and not (caller.is_admin and customer == ADMIN_CUSTOMER_ID):
        raise PermissionError(
            f"data tag {tag!r}: only the admin, as customer {ADMIN_CUSTOMER_ID!r}, may push "
            f"shared data; use a tag without {SHARED_PREFIX!r} for your own data"
        )
    job = MockDataJob(
        customer_id=customer,
        state=MockJobState.PENDING.value,
        message="accepted",
        config=body.model_dump(mode="json", by_alias=False),
        data_tag=body.mock_data_configuration.data_tag,
    )
    job.events.append(MockDataJobEvent(kind="state", type="pending", message="accepted"))
    session.add(job)
    session.flush()
    return job


def list_jobs(*, session: Session, caller: Caller) -> list[MockDataJob]:
    """The caller's jobs (all of them for the admin), newest first."""
    query = select(MockDataJob).order_by(MockDataJob.created_at.desc())
    if not caller.is_admin:
        query = query.where(MockDataJob.customer_id == caller.customer_id)
    return list(session.scalars(query))


def get_job(*, session: Session, caller: Caller, job_id: str) -> MockDataJob:
    """The job, if the caller may see it; `MockJobNotFoundError` otherwise."""
    job = session.get(MockDataJob, job_id)
    if job is None or not (caller.is_admin or job.customer_id == caller.customer_id):
        raise MockJobNotFoundError(job_id)
    return job


def job_view(job: MockDataJob, *, events: bool = False) -> dict[str, Any]:
    """The JSON form of a job: state, configuration, partition summaries (and its events)."""
    config = job.config.get("mock_data_configuration", {})
    view: dict[str, Any] = {
        "id": job.id,
        "customer_id": job.customer_id,
        "state": job.state,
        "message": job.message,
        "active": MockJobState(job.state) in ACTIVE_MOCK_STATES,
        "dataset_name": config.get("dataset_name"),
        "data_tag": job.data_tag,
        "stored_data_tag": stored_tag_of(job),
        "partitioning": job.config.get("partitioning"),
        "measure": job.measure or None,
        "partitions": job.partitions,
        "created_at": iso_utc(job.created_at),
        "updated_at": iso_utc(job.updated_at),
        "finished_at": iso_utc(job.finished_at),
    }
    if events:
        view["config"] = job.config
        view["events"] = [event_view_of(e) for e in job.events]
    return view


def stored_tag_of(job: MockDataJob) -> str:
    """The data servers' tag of a job's partitions: its tag in its owner's namespace."""
    return stored_data_tag(job.customer_id, job.data_tag)


def event_view_of(event: MockDataJobEvent) -> dict[str, Any]:
    """The JSON form of one job event (the shape of a project's events)."""
    return {
        "id": event.id,
        "timestamp": iso_utc(event.timestamp),
        "kind": event.kind,
        "type": event.type,
        "message": event.message,
        "data": event.data,
    }
