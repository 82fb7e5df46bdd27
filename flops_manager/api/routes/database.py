"""`DELETE /api/flops/database` (original FLOps path, admin only): forget finished projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flops_manager.api.deps import AdminCaller, RequestedCustomerId, SessionDep
from flops_manager.api.errors import ADMIN_RESPONSES, ErrorBody, PermissionDeniedError
from flops_manager.services.database_reset import KEPT, reset_database
from flops_manager.services.tokens import ADMIN_CUSTOMER_ID

__all__ = ["router"]

router = APIRouter(tags=["database"])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": 'Optional `{"customerID": "Admin"}`, as the oak CLI sends it.',
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"customerID": {"type": "string"}}}
            }
        },
    }
}


@router.delete(
    "/database",
    summary="Forget every finished project (admin)",
    openapi_extra=_BODY_DOC,
    responses={
        **ADMIN_RESPONSES,
        409: {"model": ErrorBody, "description": "A project is active or a service still runs."},
    },
)
@router.delete("/database/", include_in_schema=False)
def delete_database(
    _admin: AdminCaller, session: SessionDep, customer_id: RequestedCustomerId
) -> dict[str, Any]:
    """Delete every finished project with its events and service records (`oak addon flops redb`).

    Refused (409) while a project is active or a recorded service was never undeployed. API
    tokens, MLflow runs and registered models, built environments and images, mock-data jobs
    and their data stay. As in the original FLOps, `customerID`, when given, must be `Admin`.
    """
    if customer_id is not None and customer_id != ADMIN_CUSTOMER_ID:
        raise PermissionDeniedError("only admins may reset the database (customerID 'Admin')")
    deleted = reset_database(session=session)
    return {
        "message": "Successfully reset the database.",
        "deleted_projects": deleted,
        "kept": KEPT,
    }
