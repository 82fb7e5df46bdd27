"""Projects: `/api/flops/projects` — create, list, read, follow, read logs, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from flops_core.repos import RepoPolicyError
from flops_manager.api.deps import CurrentCaller, DatabaseDep, RuntimeDep, SessionDep
from flops_manager.api.errors import AUTH_RESPONSES, PermissionDeniedError
from flops_manager.db import ProjectEvent
from flops_manager.lifecycle.node_placement import NodePlacementError, place_learners
from flops_manager.schemas import ACTIVE_STATES, ProjectCreate, ProjectState, ProjectSummary
from flops_manager.services import projects as service
from flops_manager.services.nodes import RegisteredNode
from flops_manager.services.project_list import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    list_project_summaries,
)
from flops_manager.services.projects import ProjectConflictError

__all__ = ["router"]

router = APIRouter(tags=["projects"], responses=AUTH_RESPONSES)

#: Most events one callback request may carry (reporters send at most 200).
MAX_EVENTS_PER_CALLBACK = 1000
#: The largest id the database can hold (a signed 64-bit integer); larger ones are a 422.
MAX_EVENT_ID = 2**63 - 1

#: The `after` query parameter of the event list and the event stream.
AfterEventId = Annotated[
    int, Query(ge=0, le=MAX_EVENT_ID, description="Only events with a larger id.")
]


@router.post("/projects", status_code=status.HTTP_201_CREATED)
@router.post("/projects/", status_code=status.HTTP_201_CREATED, include_in_schema=False)
def create_project(
    body: ProjectCreate,
    caller: CurrentCaller,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """Accept a project and start it in the background; answers at once with its id.

    `message` is what the original FLOps manager answered; the `oak addon flops project` CLI
    prints the reply as it is. Where learners go to the registered nodes that hold the data
    (`oakestra`), learners that do not fit them are a 422 on the field to change
    (`training_configuration.data_tags`, `.learners`, `.min_available_clients`,
    `learner_platforms`), naming how many nodes hold the tags and why others were skipped.
    """
    try:
        runtime.lifecycle.context.repo_policy.check(body.ml_repo_url)
    except (RepoPolicyError, ValueError) as e:  # ValueError: urlsplit, e.g. "https://[x"
        message = str(e) if isinstance(e, RepoPolicyError) else f"not a valid URL ({e})"
        raise RequestValidationError(
            [{"loc": ("body", "ml_repo_url"), "msg": message, "type": "value_error"}]
        ) from e
    context = runtime.lifecycle.context
    # The learners must fit the nodes that hold the data now; training places them again.
    places = context.orchestrator.capabilities.places_on_nodes
    check = partial(_place_on_nodes, context.registered_nodes) if places else None
    try:
        project, token = service.create_project(
            session=session, caller=caller, body=body, check=check
        )
    except PermissionError as e:
        raise PermissionDeniedError(str(e)) from e
    except NodePlacementError as e:
        raise RequestValidationError(
            [{"loc": ("body", *e.loc), "msg": str(e), "type": "value_error"}]
        ) from e
    session.commit()
    runtime.lifecycle.start(project.id, body=body, repo_url=body.ml_repo_url, token=token)
    url = str(request.url_for("get_project", project_id=project.id))
    response.headers["Location"] = url
    return {
        "id": project.id,
        "url": url,
        "state": project.state,
        "message": "New FLOps project started successfully",
    }


def _place_on_nodes(nodes: Callable[[], list[RegisteredNode]], body: ProjectCreate) -> None:
    place_learners(nodes(), body)


@router.get(
    "/projects",
    response_model=list[ProjectSummary],
    responses={
        200: {
            "headers": {
                "X-Total-Count": {
                    "description": "How many projects match in all (every page).",
                    "schema": {"type": "integer"},
                },
                "Link": {
                    "description": 'The next page, `<url>; rel="next"`, while there is one.',
                    "schema": {"type": "string"},
                },
            }
        }
    },
)
def list_projects(
    caller: CurrentCaller,
    session: SessionDep,
    request: Request,
    state: Annotated[
        list[ProjectState] | None,
        Query(description="Only projects in this state; repeat it for several."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Projects per page, newest first.")
    ] = DEFAULT_LIMIT,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Skip this many projects first.")
    ] = 0,
) -> Response:
    """The caller's projects (every project for the admin), newest first, one page of
    summaries: state, message, timestamps, round progress, strategy and learners, without
    the configuration, result or events (`GET /projects/{id}` has them).

    The body is a JSON list, as before pages existed; `X-Total-Count` says how many match,
    and `Link` (`rel="next"`) gives the next page while there is one.
    """
    page = list_project_summaries(
        session=session, caller=caller, states=state or (), limit=limit, offset=offset
    )
    headers = {"X-Total-Count": str(page.total)}
    if offset + len(page.summaries) < page.total:
        following = request.url.include_query_params(offset=offset + limit, limit=limit)
        headers["Link"] = f'<{following}>; rel="next"'
    # Encoded here, on the worker thread, not by FastAPI on the event loop.
    return JSONResponse(page.summaries, headers=headers)


@router.get("/projects/{project_id}")
def get_project(project_id: str, caller: CurrentCaller, session: SessionDep) -> dict[str, Any]:
    """A project: state, message, configuration, result (metrics, model, MLflow) and services."""
    project = service.get_project(session=session, caller=caller, project_id=project_id)
    view = service.project_view(project, detail=True)
    # Counted in the database: loading a long project's events costs ~90 ms per request.
    view["events"] = session.scalar(
        select(func.count()).select_from(ProjectEvent).where(ProjectEvent.project_id == project.id)
    )
    return view


@router.get("/projects/{project_id}/events")
def list_events(
    project_id: str,
    caller: CurrentCaller,
    session: SessionDep,
    after: AfterEventId = 0,
) -> list[dict[str, Any]]:
    """The project's state transitions and reported events, oldest first."""
    service.get_project(session=session, caller=caller, project_id=project_id)
    events = service.list_events(session=session, project_id=project_id, after=after)
    return [service.event_view(e) for e in events]


@router.get("/projects/{project_id}/events/stream")
async def stream_events(
    project_id: str,
    caller: CurrentCaller,
    database: DatabaseDep,
    after: AfterEventId = 0,
    last_event_id: Annotated[
        str | None,
        Header(
            max_length=64,
            description="Resume after this event id (what a reconnecting EventSource "
            "sends); a value that is not a non-negative integer is ignored.",
        ),
    ] = None,
) -> StreamingResponse:
    """Server-sent events: every event as it is recorded; ends when the project is final.

    A client that reconnects resumes after `Last-Event-ID` (or `?after=`); a comment line is
    sent every 15 s while nothing happens, so that proxies keep the connection open. The
    database is read on worker threads, never on the event loop.
    """
    start = max(after, _event_id(last_event_id))

    def check() -> None:
        with database.session() as session:
            service.get_project(session=session, caller=caller, project_id=project_id)

    await run_in_threadpool(check)

    def poll(after: int) -> tuple[list[dict[str, Any]], bool]:
        with database.session() as session:
            batch = [
                service.event_view(e)
                for e in service.list_events(session=session, project_id=project_id, after=after)
            ]
            project = service.get_project(session=session, caller=caller, project_id=project_id)
            return batch, ProjectState(project.state) not in ACTIVE_STATES

    async def events() -> AsyncIterator[str]:
        seen, quiet_since = start, time.monotonic()
        while True:
            batch, final = await run_in_threadpool(poll, seen)
            for event in batch:
                seen = event["id"]
                yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n"
            if final:
                return
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 15:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.25)

    return StreamingResponse(events(), media_type="text/event-stream")


def _event_id(value: str | None) -> int:
    """`Last-Event-ID` as an event id; 0 (from the start) unless a non-negative integer."""
    value = (value or "").strip()
    return min(int(value), MAX_EVENT_ID) if value.isascii() and value.isdigit() else 0


@router.get("/projects/{project_id}/logs")
def project_logs(
    project_id: str,
    caller: CurrentCaller,
    session: SessionDep,
    runtime: RuntimeDep,
    tail: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """The last output lines of each service the project started."""
    project = service.get_project(session=session, caller=caller, project_id=project_id)
    services = []
    for record in project.services:
        try:
            lines = runtime.orchestrator.logs(record.service_id, tail=tail)
        except Exception:
            lines = ["(logs no longer available)"]
        services.append(
            {
                "service_id": record.service_id,
                "role": record.role,
                "name": record.service_id,
                "lines": lines,
            }
        )
    return {"services": services}


@router.delete("/projects/{project_id}")
def cancel_project(
    project_id: str, caller: CurrentCaller, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Cancel a project: everything it started is undeployed, its state becomes cancelled.

    A completed project keeps its inference service (post-training step
    `deploy_trained_model_image`) until this is called: then the service is stopped and the
    project stays `completed`.
    """
    project = service.get_project(session=session, caller=caller, project_id=project_id)
    if ProjectState(project.state) not in ACTIVE_STATES:
        live = [s for s in project.services if s.undeployed_at is None]
        if not live:
            raise ProjectConflictError(f"project {project_id} is already {project.state}")
        state = project.state
        session.close()
        stopped = runtime.lifecycle.stop_services(project_id)
        return {"id": project_id, "state": state, "stopped_services": stopped}
    session.close()
    runtime.lifecycle.cancel(project_id)
    runtime.lifecycle.wait(project_id, timeout=60)
    return {"id": project_id, "state": ProjectState.CANCELLED.value}


@router.post(
    "/projects/{project_id}/callbacks", status_code=status.HTTP_204_NO_CONTENT,
    include_in_schema=False,
)  # fmt: skip
def receive_event(
    project_id: str,
    body: Annotated[
        dict[str, Any] | Annotated[list[dict[str, Any]], Field(max_length=MAX_EVENTS_PER_CALLBACK)],
        Body(),
    ],
    session: SessionDep,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Events from the project's own services (docs/events.md), with its callback token.

    The body is one event or a list of them (what reporters send since they batch), stored
    and handed to the project's runner in list order, in one transaction.
    """
    token = (authorization or "").removeprefix("Bearer ").strip()
    project = service.authorize_callback(session=session, project_id=project_id, token=token)
    events = body if isinstance(body, list) else [body]
    for event in events:
        service.record_reported_event(session=session, project=project, event=event)
    session.commit()
    for event in events:
        runtime.lifecycle.deliver(project_id, event)
