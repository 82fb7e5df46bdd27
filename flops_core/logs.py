"""One logger tree (`flops.*`) and its set-up for the FLOps command-line entry points."""

import logging
import sys
from collections.abc import Iterable

__all__ = ["configure_logging", "get_logger"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Return the logger `flops.<name>`."""
    return logging.getLogger(f"flops.{name}")


def configure_logging(level: str = "INFO", *, quiet: Iterable[str] = ()) -> None:
    """Send `flops.*` records to stderr, one line per event; called by entry points only.

    Parameters
    ----------
    level : str
        The level of the `flops.*` loggers, e.g. `INFO`.
    quiet : Iterable[str]
        Loggers of libraries (e.g. `flwr`) that log only warnings and errors.
    """
    root = logging.getLogger("flops")
    if not any(getattr(h, "_flops", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._flops = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
