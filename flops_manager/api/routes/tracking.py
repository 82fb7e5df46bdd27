"""`GET /api/flops/tracking`: where the MLflow tracking server of this manager is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from flops_manager.api.deps import (
    CurrentCaller,
    RequestedCustomerId,
    RuntimeDep,
    requested_customer,
)
from flops_manager.api.errors import AUTH_RESPONSES, ErrorBody

__all__ = ["router"]

router = APIRouter(tags=["tracking"], responses=AUTH_RESPONSES)

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": 'Optional `{"customerID": "..."}` (the Python oak CLI sends it on GET).',
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"customerID": {"type": "string"}}}
            }
        },
    }
}


@router.get(
    "/tracking",
    openapi_extra=_BODY_DOC,
    responses={403: {"model": ErrorBody, "description": "customerID is another customer."}},
)
@router.get("/tracking/", include_in_schema=False)
async def tracking(
    caller: CurrentCaller, runtime: RuntimeDep, customer_id: RequestedCustomerId
) -> dict[str, Any]:
    """The MLflow tracking server's URL and whether it answers.

    One tracking server serves every customer of this manager; `customerID` (query or JSON
    body, as the oak CLIs send it) is checked like elsewhere: a customer may name only itself.
    `tracking_server_url` is the original FLOps field, the same URL as `tracking_url`: the
    one the project services are given (FLOPS_PUBLIC_TRACKING_URI where it is set).
    """
    customer = requested_customer(caller, customer_id)
    ok, message = await run_in_threadpool(runtime.stack.health)
    url = runtime.lifecycle.context.services_tracking_url
    return {
        "tracking_url": url,
        "ready": ok,
        "message": message,
        "tracking_server_url": url,
        "customer_id": customer,
    }
