"""Command-line options the service CLIs share: where events go, and how much to log."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["CallbackTokenOption", "CallbackUrlOption", "LogLevelOption"]

#: Where the service POSTs its events (the manager's callback URL); None: events are logged.
CallbackUrlOption = Annotated[
    str | None, typer.Option(help="Where to POST events.", envvar="FLOPS_CALLBACK_URL")
]
#: The bearer token of the callback; from the environment, which `ps` does not show.
CallbackTokenOption = Annotated[
    str | None,
    typer.Option(
        help="Bearer token for the callback; prefer the environment variable.",
        envvar="FLOPS_CALLBACK_TOKEN",
        show_default=False,
    ),
]
#: The level of the `flops.*` loggers (`configure_logging`).
LogLevelOption = Annotated[str, typer.Option(help="Log level.")]
