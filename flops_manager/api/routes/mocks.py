"""Mock data: `/api/flops/mocks` — put demo data on the learner nodes' data servers, list the
jobs that did, read one, delete one (its partitions are dropped from the data servers).

Tags are stored in the job owner's namespace (`flops_manager.core.data_tags`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flops_manager.api.deps import (
    CurrentCaller,
    DatabaseDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
)
from flops_manager.api.errors import AUTH_RESPONSES, ErrorBody, PermissionDeniedError
from flops_manager.db import Database
from flops_manager.db.models import MockDataJob
from flops_manager.schemas.mock_data import DirichletPartitioning, MockDataRequest, MockJobState
from flops_manager.services import mock_jobs as service
from flops_manager.services.hub_datasets import HubAccess, hub_access_of
from flops_manager.services.mock_datasets import (
    DatasetRequest,
    InvalidMockDataError,
    RequestedDataset,
    datasets_dir_of,
    resolve_requested_dataset,
)
from flops_manager.services.mock_jobs import DataServers, MockJobs
from flops_manager.services.node_data_servers import NodeDataServers

__all__ = ["DataServersDep", "MockJobsDep", "get_data_servers", "get_mock_jobs", "router"]

router = APIRouter(tags=["mock data"], responses=AUTH_RESPONSES)

_jobs_lock = threading.Lock()


async def get_data_servers(runtime: RuntimeDep) -> DataServers:
    """The learner nodes' data servers (503 while the manager starts): the registered nodes'
    own where learners run on them (`places_on_nodes`), else the embedded stack's."""
    context = runtime.lifecycle.context
    if context.orchestrator.capabilities.places_on_nodes:
        return NodeDataServers(context.registered_nodes)
    return runtime.stack


DataServersDep = Annotated[DataServers, Depends(get_data_servers)]


def get_mock_jobs(request: Request, database: DatabaseDep) -> MockJobs:
    """The app's one `MockJobs`, created (ending jobs a previous manager left) on first use."""
    with _jobs_lock:
        jobs = getattr(request.app.state, "mock_jobs", None)
        if not isinstance(jobs, MockJobs):
            jobs = MockJobs(database)
            request.app.state.mock_jobs = jobs
        return jobs


MockJobsDep = Annotated[MockJobs, Depends(get_mock_jobs)]


def _resolve(body: MockDataRequest, datasets_dir: Path, hub: HubAccess) -> RequestedDataset:
    config = body.mock_data_configuration
    request = DatasetRequest(
        name=config.dataset_name,
        label_column=config.label_column,
        labels_required=isinstance(body.partitioning, DirichletPartitioning),
        partitions=config.number_of_partitions,
        min_size=getattr(body.partitioning, "min_size", 1),
    )
    try:
        return resolve_requested_dataset(request, datasets_dir=datasets_dir, hub=hub)
    except InvalidMockDataError:
        raise
    except ValueError as e:  # a path the OS cannot take, e.g. with a NUL character
        raise InvalidMockDataError(
            ("body", "mock_data_configuration", "dataset_name"),
            f"dataset name {config.dataset_name!r} is not a usable file name ({e})",
        ) from e


def _job_body(job_id: str, database: Database, url: str) -> dict[str, Any]:
    with database.session() as session:
        job = session.get(MockDataJob, job_id)
        if job is None:
            raise service.MockJobNotFoundError(job_id)
        return {**service.job_view(job), "url": url}


@router.post(
    "/mocks",
    status_code=status.HTTP_201_CREATED,
    responses={
        503: {
            "model": ErrorBody,
            "description": "A data server, or the Hugging Face hub a `dataset_name` needs, "
            "cannot be reached (or an Oakestra token cannot be checked).",
        }
    },
)
@router.post("/mocks/", status_code=status.HTTP_201_CREATED, include_in_schema=False)
async def provide_mock_data(
    body: MockDataRequest,
    caller: CurrentCaller,
    settings: SettingsDep,
    database: DatabaseDep,
    servers: DataServersDep,
    jobs: MockJobsDep,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    wait: Annotated[
        bool, Query(description="Answer when the data is on the data servers (default).")
    ] = True,
) -> Any:
    """Split the dataset (IID or Dirichlet non-IID) and push partition i to node i's server.

    Data tags are namespaced by customer: `data_tag: "digits"` of customer `acme` is stored
    on the data servers as `acme:digits` (shown as `stored_data_tag`), and only acme's
    projects read it, by naming `digits` in `data_tags`. The admin, as customer `Admin`, may
    push `shared:digits`: stored as plain `digits`, readable by every project that names
    `shared:digits`. A customer's `shared:` tag is a 403.

    `dataset_name` may name a Hugging Face hub dataset (`mnist`, `cifar10`, `owner/name`),
    as the original FLOps SLAs do: its "train" split is loaded with its own columns and
    features by the job (FLOPS_HUB_DATASETS, HF_ENDPOINT, HF_HUB_OFFLINE). If the hub cannot
    be reached, the answer is a 503 at once, naming the field and the datasets that need no
    hub.

    By default the answer comes when the job has ended: 201 with `state: completed`, or an
    error with the job and the reason (502; 503 if a data server or the hub cannot be
    reached) after what was pushed has been dropped. With `?wait=false` the answer is a 201
    in `pending` at once; follow the job at its `url`.
    """
    try:
        dataset = await run_in_threadpool(
            _resolve, body, datasets_dir_of(settings), hub_access_of(settings)
        )
    except InvalidMockDataError as e:
        raise RequestValidationError([{"loc": e.loc, "msg": str(e), "type": "value_error"}]) from e

    def create() -> str:
        with database.session() as session:
            job = service.create_job(session=session, caller=caller, body=body)
            return job.id

    try:
        job_id = await run_in_threadpool(create)
    except PermissionError as e:
        raise PermissionDeniedError(str(e)) from e
    jobs.accept(job_id)
    url = str(request.url_for("get_mock_data_job", job_id=job_id))
    if not wait:
        background.add_task(jobs.run, job_id, dataset=dataset, request=body, servers=servers)
        response.headers["Location"] = url
        return await run_in_threadpool(_job_body, job_id, database, url)
    state, retryable = await run_in_threadpool(
        jobs.run, job_id, dataset=dataset, request=body, servers=servers
    )
    view = await run_in_threadpool(_job_body, job_id, database, url)
    if state is MockJobState.COMPLETED:
        response.headers["Location"] = url
        return view
    return JSONResponse(
        {**view, "detail": f"mock-data job {job_id} {view['message']}"},
        status_code=503 if retryable else 502,
        headers={"Location": url},
    )


@router.get("/mocks")
@router.get("/mocks/", include_in_schema=False)
def list_mock_data_jobs(caller: CurrentCaller, session: SessionDep) -> list[dict[str, Any]]:
    """The caller's mock-data jobs (every job for the admin), newest first.

    Each shows `data_tag` as it was written and `stored_data_tag`, its tag on the data servers.
    """
    return [service.job_view(j) for j in service.list_jobs(session=session, caller=caller)]


@router.get("/mocks/{job_id}")
@router.get("/mocks/{job_id}/", include_in_schema=False)
def get_mock_data_job(job_id: str, caller: CurrentCaller, session: SessionDep) -> dict[str, Any]:
    """A job: state, message, configuration, label-skew measure, partitions and events."""
    job = service.get_job(session=session, caller=caller, job_id=job_id)
    return service.job_view(job, events=True)


@router.delete("/mocks/{job_id}")
@router.delete("/mocks/{job_id}/", include_in_schema=False)
def delete_mock_data_job(
    job_id: str, caller: CurrentCaller, session: SessionDep, jobs: MockJobsDep
) -> dict[str, Any]:
    """Drop the job's partitions from the data servers; a running job is cancelled first."""
    service.get_job(session=session, caller=caller, job_id=job_id)
    session.close()
    state = jobs.delete(job_id)
    return {"id": job_id, "state": state.value}
