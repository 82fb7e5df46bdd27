"""The API's routers, one per resource, mounted under `/api/flops` by `api_router`."""

from fastapi import APIRouter

from flops_manager.api.routes import (
    database,
    health,
    mocks,
    node_tokens,
    nodes,
    projects,
    tokens,
    tracking,
)

__all__ = ["API_PREFIX", "api_router"]

API_PREFIX = "/api/flops"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(health.router)
api_router.include_router(tokens.router)
api_router.include_router(projects.router)
api_router.include_router(tracking.router)
api_router.include_router(mocks.router)
api_router.include_router(nodes.router)
api_router.include_router(node_tokens.router)
api_router.include_router(database.router)
