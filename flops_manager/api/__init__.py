"""The manager's REST API: routers, dependencies and the mapping of errors to HTTP."""

from flops_manager.api.errors import install_error_handlers
from flops_manager.api.routes import API_PREFIX, api_router

__all__ = ["API_PREFIX", "api_router", "install_error_handlers"]
