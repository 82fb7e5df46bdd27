"""`GET /api/flops/tracking`: where the MLflow tracking server of this manager is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flops_manager.api.deps import CurrentCaller, RuntimeDep
from flops_manager.api.errors import AUTH_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["tracking"], responses=AUTH_RESPONSES)


@router.get("/tracking")
@router.get("/tracking/", include_in_schema=False)
def tracking(caller: CurrentCaller, runtime: RuntimeDep) -> dict[str, Any]:
    """The MLflow tracking server's URL and whether it answers."""
    ok, message = runtime.stack.health()
    return {"tracking_url": runtime.stack.tracking_url, "ready": ok, "message": message}
