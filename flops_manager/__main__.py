"""`python -m flops_manager`: read the settings, then serve the manager's API with uvicorn."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from flops_core.logs import configure_logging, get_logger
from flops_manager.api import API_PREFIX
from flops_manager.core.config import Settings
from flops_manager.main import ConfigurationError, create_app

__all__ = ["main"]

_log = get_logger("manager.api")

#: Exit status for a configuration the manager cannot start with.
EXIT_CONFIGURATION = 2
#: Exit status when the server could not start (the port is taken), as uvicorn's.
EXIT_STARTUP = 3


def describe_settings_error(error: ValidationError) -> str:
    """Describe invalid settings one problem a line, naming the environment variable.

    Pydantic's own text includes the input values; that would print secrets (the admin token,
    a database password), so only locations and messages are used.

    Parameters
    ----------
    error : ValidationError
        What `Settings()` raised.
    """
    lines = []
    for problem in error.errors():
        loc = "_".join(str(part) for part in problem.get("loc", ()))
        where = f"FLOPS_{loc.upper()}" if loc else "settings"
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "invalid manager settings:\n" + "\n".join(lines)


def main() -> int:
    """Run the manager until it is stopped; return the process's exit status.

    Returns
    -------
    int
        0 after a clean shutdown, 2 when the settings cannot run a manager (no admin token,
        invalid values); the reason is printed to stderr without a traceback; 3 when the
        server could not start (its port is taken).
    """
    configure_logging()
    try:
        settings = Settings(_env_file=os.environ.get("FLOPS_ENV_FILE") or None)
        app = create_app(settings)
    except ValidationError as e:
        print(f"flops_manager: {describe_settings_error(e)}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except ConfigurationError as e:
        print(f"flops_manager: {e}", file=sys.stderr)
        return EXIT_CONFIGURATION
    # The lifespan logs the database URL, redacted; the admin token is never logged.
    _log.info("FLOps manager on http://%s:%s%s/docs", settings.host, settings.port, API_PREFIX)
    return 0 if serve(app, host=settings.host, port=settings.port) else EXIT_STARTUP


def serve(app: FastAPI, *, host: str, port: int) -> bool:
    """Serve `app` with uvicorn until a signal stops it; whether it started (as `uvicorn.run`).

    The signal's name is left in `app.state.stop_signal`, for the reason projects record.
    """
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return bool(server.started)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app which signal stops it (projects record the reason)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.app
        if isinstance(app, FastAPI) and not getattr(app.state, "stop_signal", None):
            app.state.stop_signal = signal.Signals(sig).name
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
