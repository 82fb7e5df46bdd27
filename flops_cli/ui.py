"""What every command shares: the consoles, the global options, and errors shown to users."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from flops_cli.client import ManagerClient, ManagerError

__all__ = [
    "ADMIN_TOKEN_FILE",
    "CliState",
    "console",
    "default_data_dir",
    "err_console",
    "fail",
    "manager_errors",
    "read_token_file",
    "resolve_token",
    "state_of",
]

#: Output meant for the user (and for scripts: ids, tokens, URLs).
console = Console(soft_wrap=True)
#: Errors, hints and progress that scripts capturing stdout should not get.
err_console = Console(stderr=True, soft_wrap=True)

#: Name of the file, in the manager's data directory, that holds the admin token.
ADMIN_TOKEN_FILE = "admin-token"


@dataclass(frozen=True)
class CliState:
    """The global options: where the manager is and which token to send.

    Parameters
    ----------
    url : str
        The manager's base URL.
    token : str | None
        The bearer token; never printed.
    transport : httpx.BaseTransport | None
        Where requests go instead of the network (tests: `httpx.MockTransport`).
    """

    url: str
    token: str | None = field(default=None, repr=False)
    transport: httpx.BaseTransport | None = None

    def client(self) -> ManagerClient:
        """A client of the manager with these options."""
        return ManagerClient(self.url, self.token, transport=self.transport)


def state_of(ctx: typer.Context) -> CliState:
    """The `CliState` the root callback stored in the context."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):
        raise RuntimeError("the root callback did not run")
    return state


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`FLOPS_DATA_DIR`, else `~/.flops`: the manager's data directory by default."""
    value = (os.environ if environ is None else environ).get("FLOPS_DATA_DIR")
    return Path(value).expanduser() if value else Path.home() / ".flops"


def read_token_file(path: Path) -> str | None:
    """The token stored in `path`, or None if there is no such file or it is empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        fail(f"cannot read the token file {path}: {e.strerror or e}")
    return token or None


def resolve_token(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token to send: `--token`/`FLOPS_TOKEN`, else `FLOPS_ADMIN_TOKEN`, else the file.

    Parameters
    ----------
    explicit : str | None
        The value of `--token` (typer has already read `FLOPS_TOKEN` into it).
    environ : Mapping[str, str] | None
        The environment to read (default `os.environ`).
    """
    env = os.environ if environ is None else environ
    if explicit:
        return explicit
    if env.get("FLOPS_ADMIN_TOKEN"):
        return env["FLOPS_ADMIN_TOKEN"]
    return read_token_file(default_data_dir(env) / ADMIN_TOKEN_FILE)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print `Error: message` to stderr and exit with `code`."""
    err_console.print(f"[red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def manager_errors() -> Iterator[None]:
    """Turn a `ManagerError` into its one-line message and exit status 1."""
    try:
        yield
    except ManagerError as e:
        fail(str(e))
