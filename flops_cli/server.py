"""`flops server`: run the manager in the foreground, with an admin token kept in a 0600 file."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from flops_cli.ui import ADMIN_TOKEN_FILE, default_data_dir, err_console, fail, read_token_file
from flops_core.api_tokens import generate_token

__all__ = ["ensure_admin_token", "manager_environment", "server"]

#: The manager refuses shorter admin tokens.
MIN_TOKEN_LENGTH = 24


def ensure_admin_token(data_dir: Path) -> tuple[str, bool]:
    """Return the admin token stored in `data_dir`, generating and storing it the first time.

    The file `<data_dir>/admin-token` is created with mode 0600 (the directory with 0700 if
    it is new) and never rewritten: later starts reuse the same token.

    Parameters
    ----------
    data_dir : Path
        The manager's data directory.

    Returns
    -------
    tuple[str, bool]
        The token, and whether it was created now.
    """
    path = data_dir / ADMIN_TOKEN_FILE
    token = read_token_file(path)
    if token is not None:
        if len(token) < MIN_TOKEN_LENGTH:
            fail(f"the admin token in {path} is shorter than {MIN_TOKEN_LENGTH} characters")
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            err_console.print(
                f"[yellow]Warning:[/] {path} is readable by other users; chmod 600 it",
                highlight=False,
            )
        return token, False
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = generate_token()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another `flops server` got there first: use its token
        return ensure_admin_token(data_dir)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token, True


def manager_environment(
    *,
    base: Mapping[str, str],
    data_dir: Path,
    port: int | None = None,
    host: str | None = None,
    allow_local_repos: bool = False,
) -> tuple[dict[str, str], Path | None]:
    """The environment to start `python -m flops_manager` with.

    Options given override the `FLOPS_*` variables of `base`; options not given leave them
    (or the manager's defaults) alone. Without `FLOPS_ADMIN_TOKEN` in `base`, the token of
    `ensure_admin_token(data_dir)` is passed.

    Parameters
    ----------
    base : Mapping[str, str]
        The environment to start from (usually `os.environ`).
    data_dir : Path
        The manager's data directory (`FLOPS_DATA_DIR`).
    port, host : int | None, str | None
        Where the manager listens.
    allow_local_repos : bool
        Accept local paths and `file://` repo URLs.

    Returns
    -------
    tuple[dict[str, str], Path | None]
        The environment, and the token file used (None when `FLOPS_ADMIN_TOKEN` was set).
    """
    env = dict(base)
    env["FLOPS_DATA_DIR"] = str(data_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if port is not None:
        env["FLOPS_PORT"] = str(port)
    if host is not None:
        env["FLOPS_HOST"] = host
    if allow_local_repos:
        env["FLOPS_ALLOW_LOCAL_REPOS"] = "true"
    token_file = None
    if not env.get("FLOPS_ADMIN_TOKEN"):
        env["FLOPS_ADMIN_TOKEN"], _ = ensure_admin_token(data_dir)
        token_file = data_dir / ADMIN_TOKEN_FILE
    return env, token_file


def server(
    port: Annotated[
        int | None, typer.Option(help="Port of the API (default FLOPS_PORT, else 5072).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default FLOPS_HOST, else 127.0.0.1).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="State, logs, environments (default FLOPS_DATA_DIR, else ~/.flops)."),
    ] = None,
    allow_local_repos: Annotated[
        bool, typer.Option(help="Accept local paths and file:// repo URLs (offline use, tests).")
    ] = False,
) -> None:
    """Run the FLOps manager in the foreground until Ctrl-C.

    Without FLOPS_ADMIN_TOKEN, an admin token is generated on the first start and kept in
    <data-dir>/admin-token (mode 0600), where the other flops commands find it.
    """
    folder = (data_dir or default_data_dir()).expanduser().absolute()
    env, token_file = manager_environment(
        base=os.environ, data_dir=folder, port=port, host=host, allow_local_repos=allow_local_repos
    )
    if token_file is None:
        err_console.print("Admin token: FLOPS_ADMIN_TOKEN from the environment")
    else:
        err_console.print(f"Admin token: in {token_file}", highlight=False)
        if folder != default_data_dir().absolute():
            err_console.print(
                f"Other flops commands find it with FLOPS_DATA_DIR={folder} (or --token)",
                highlight=False,
            )
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "flops_manager"]
    try:
        os.execve(sys.executable, argv, env)
    except OSError as e:
        fail(f"cannot start the manager ({' '.join(argv)}): {e.strerror or e}")
