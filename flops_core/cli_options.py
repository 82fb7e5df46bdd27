"""What the FLOps command-line apps share: how an app is made, where events go, the log level."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["CallbackTokenOption", "CallbackUrlOption", "LogLevelOption", "cli_app"]

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


def cli_app(help: str, *, no_args_is_help: bool = False) -> typer.Typer:
    """A command-line app whose tracebacks never show local variables (they hold tokens).

    Parameters
    ----------
    help : str
        What the app does, for `--help`.
    no_args_is_help : bool
        Whether the app shows its help when called without arguments.
    """
    return typer.Typer(
        help=help,
        no_args_is_help=no_args_is_help,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
