"""`DELETE /api/flops/database` (original FLOps path, admin only): forget finished projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from flops_manager.api.deps import AdminCaller, RequestedCustomerId, SessionDep
from flops_manager.api.errors import ADMIN_RESPONSES, ErrorBody, PermissionDeniedError
from flops_manager.services.database_reset import KEPT, reset_database
from flops_manager.services.tokens import ADMIN_CUSTOMER_ID

__all__ = ["router"]

router = APIRouter(tags=["database"])

_CONFIRM = (
    'customerID is required: send {"customerID": "Admin"} (JSON body, or ?customerID=Admin) '
    "to reset the database"
)

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": '`{"customerID": "Admin"}`, as the oak CLIs send it (or the query '
        "parameter `customerID=Admin`); without it the reset is refused.",
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
    and their data stay. As in the original FLOps, the request must say `customerID: "Admin"`
    (JSON body or query; exactly that spelling): without it (missing, null or empty) the
    answer is a 422, with any other value a 403, and nothing is deleted.
    """
    if not customer_id:
        raise RequestValidationError(
            [{"loc": ("body", "customerID"), "type": "missing", "msg": _CONFIRM}]
        )
    if customer_id != ADMIN_CUSTOMER_ID:
        raise PermissionDeniedError(
            f"only admins may reset the database, with customerID 'Admin' (not {customer_id!r})"
        )
    deleted = reset_database(session=session)
    return {
        "message": "Successfully reset the database.",
        "deleted_projects": deleted,
        "kept": KEPT,
    }
