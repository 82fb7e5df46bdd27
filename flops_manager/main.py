"""Build the manager's FastAPI app from settings: `create_app(settings)`, no import-time globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from flops_core.errors import ConfigurationError
from flops_core.logs import get_logger
from flops_core.redact import redact_url
from flops_manager.api import API_PREFIX, api_router, install_error_handlers
from flops_manager.api.body_limit import BodyLimitMiddleware
from flops_manager.api.deps import ManagerContext
from flops_manager.core.config import Settings, flops_version
from flops_manager.core.service_addresses import check_service_addresses
from flops_manager.db import Database
from flops_manager.lifecycle.runtime import ManagerRuntime
from flops_manager.orchestrators.orchestrator_factory import ORCHESTRATOR_KINDS

__all__ = ["ConfigurationError", "ManagerContext", "create_app", "open_database"]

_log = get_logger("manager.api")

MISSING_ADMIN_TOKEN = (
    "set FLOPS_ADMIN_TOKEN (at least 24 characters) to the admin's bearer token before "
    "starting the manager, for example: "
    "export FLOPS_ADMIN_TOKEN=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\""
)

DESCRIPTION = """\
FLOps (Federated Learning Operations) turns an ML Git repository into a running
federated-learning deployment: learners and an aggregator are built, placed and tracked in
MLflow, and the trained model is registered.

**Authentication.** Every endpoint except `GET /api/flops/health` needs an API token in the
`Authorization` header: `Authorization: Bearer <token>`. The bare token without `Bearer ` is
accepted too, as the original FLOps CLI sends it. The admin token is configured with
`FLOPS_ADMIN_TOKEN`; the admin creates customer tokens with `POST /api/flops/tokens`.
Learner nodes are the exception: a node's data server reports itself
(`PUT /api/flops/nodes/{name}`) with a node token the admin creates for that node with
`POST /api/flops/node-tokens`; node tokens work nowhere else, API tokens not there.

**Errors.** Errors are JSON `{"detail": "..."}`; validation errors (422) list each problem
with the `loc` of the field, e.g. `["body", "customer_id"]`. Every response carries an
`X-Request-ID` header; a 500 names it so that the server log can be searched for it.
"""


def open_database(settings: Settings) -> Database:
    """Open (and if needed create) the database the settings name.

    Parameters
    ----------
    settings : Settings
        The default SQLite database lives in `settings.data_dir`, which is created if missing.
    """
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    _log.info("opening database %s", redact_url(settings.sqlalchemy_url))
    return Database(settings.sqlalchemy_url)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database unless one was given to `create_app`, and close what was opened."""
    context: ManagerContext = app.state.context
    owned = context.database is None
    if owned:
        context.database = await run_in_threadpool(open_database, context.settings)
    runtime: ManagerRuntime | None = None
    if app.state.start_projects:
        assert context.database is not None
        runtime = await run_in_threadpool(ManagerRuntime.start, context.settings, context.database)
        context.lifecycle = runtime
        context.orchestrator = runtime.orchestrator
        context.health_checks.extend([runtime.health, runtime.orchestrator_health])
    _log.info("manager ready (API at %s)", API_PREFIX)
    try:
        yield
    finally:
        if runtime is not None:
            # Projects still running record why they end: `__main__.serve` names the signal.
            reason = "the manager was stopped"
            if signal_name := getattr(app.state, "stop_signal", None):
                reason += f" ({signal_name})"
            await run_in_threadpool(runtime.stop, reason)
            context.lifecycle = context.orchestrator = None
        if owned and context.database is not None:
            context.database.close()
            context.database = None
        _log.info("manager stopped")


def create_app(
    settings: Settings, *, database: Database | None = None, start_projects: bool = True
) -> FastAPI:
    """Build the manager's app: routes, dependencies, error handlers and lifespan.

    Parameters
    ----------
    settings : Settings
        The manager's configuration; it must have an admin token.
    database : Database | None
        An open database to use (tests); the caller keeps ownership and closes it. Without
        one, the app's lifespan opens `settings.sqlalchemy_url` at startup and closes it at
        shutdown.
    start_projects : bool
        Start the parts that carry projects (orchestrator, MLflow, data servers, runners)
        with the app; tests of the API alone turn it off.

    Returns
    -------
    FastAPI
        The app; its `state.context` is the `ManagerContext` later parts fill in.

    Raises
    ------
    ConfigurationError
        If `settings.admin_token` is not set, or (with `start_projects`) the backend runs
        services on other hosts and the callback or MLflow URL they would get is a loopback
        address (`check_service_addresses` names the setting).
    """
    if settings.admin_token is None:
        raise ConfigurationError(MISSING_ADMIN_TOKEN)
    if start_projects:
        backend = ORCHESTRATOR_KINDS[settings.orchestrator]
        check_service_addresses(
            settings, services_on_other_hosts=backend.capabilities.services_on_other_hosts
        )
    app = FastAPI(
        title="FLOps manager",
        description=DESCRIPTION,
        version=flops_version(),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=f"{API_PREFIX}/redoc",
        lifespan=_lifespan,
    )
    app.state.context = ManagerContext(settings=settings, database=database)
    app.state.start_projects = start_projects
    # Added first, so it runs inside the request-id middleware: a 413 carries the id too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(api_router)
    return app
