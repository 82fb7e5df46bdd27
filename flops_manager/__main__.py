"""`python -m flops_manager`: read the settings, then serve the manager's API with uvicorn."""

from __future__ import annotations

import os
import sys

import uvicorn
from pydantic import ValidationError

from flops_manager.api import API_PREFIX
from flops_manager.core.config import Settings
from flops_manager.main import ConfigurationError, create_app
from flops_utils.logs import configure_logging, get_logger

__all__ = ["main"]

_log = get_logger("manager.api")

#: Exit status for a configuration the manager cannot start with.
EXIT_CONFIGURATION = 2


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
        invalid values); the reason is printed to stderr without a traceback.
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
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
