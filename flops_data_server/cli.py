"""Command line of the ML data server: `flops-data-server serve|push|list|drop`.

`serve --manager-url URL --cluster C [--node-name N]` also registers the node with the manager
and keeps its report fresh (`node_reporter`); the node token comes from `FLOPS_NODE_TOKEN` or
`--node-token-file`, never from the command line, which other users of the host can read.
"""

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from flops_core.cli_options import cli_app
from flops_core.errors import ConfigurationError
from flops_core.logs import configure_logging, get_logger
from flops_data_server.node_identity import (
    NODE_TOKEN_ENV,
    check_node_name,
    data_server_version,
    node_token,
    source_address_towards,
    this_platform,
)
from flops_data_server.node_reporter import NodeIdentity, NodeReporter
from flops_data_server.server import MLDataServer
from flops_utils.ml_data_client import DEFAULT_DATA_SERVER_PORT, MLDataClient, MLDataError

__all__ = ["app"]

logger = get_logger("data_server")

app = cli_app(
    "The ML data server of a FLOps learner node, and a client to fill and inspect it.",
    no_args_is_help=True,
)

DEFAULT_DATA_DIR = Path("~/.flops/ml_data")
DEFAULT_SERVER = f"grpc://127.0.0.1:{DEFAULT_DATA_SERVER_PORT}"

ServerOption = Annotated[
    str, typer.Option("--server", "-s", help="The data server, as grpc://host:port or host:port.")
]


class _ShutdownRequested(Exception):
    """Raised in the main thread by the SIGTERM/SIGINT handler of `serve`."""


def _fail(message: str) -> NoReturn:
    """Print a one-line error for the user and exit with status 1."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code=1)


def _usage_error(message: str) -> NoReturn:
    """Print a one-line error about the command line and exit with status 2 (as click does)."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code=2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the client's expected errors into a one-line message and exit status 1."""
    try:
        yield
    except MLDataError as e:
        _fail(str(e))


def _request_shutdown(signum: int, frame: FrameType | None) -> None:
    """Signal handler: stop waiting; a second signal terminates at once (OS default)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    raise _ShutdownRequested(signal.Signals(signum).name)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 listens on all interfaces.")
    ] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_DATA_SERVER_PORT,
    data_dir: Annotated[
        Path, typer.Option(help="Directory holding the datasets (kept across restarts).")
    ] = DEFAULT_DATA_DIR,
    advertise_host: Annotated[
        str | None,
        typer.Option(
            help="Host clients are told to fetch data from; default: the bind host, or "
            "127.0.0.1 when binding 0.0.0.0."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    manager_url: Annotated[
        str | None,
        typer.Option(
            help="The FLOps manager to register this node with, e.g. http://10.0.0.1:5072; "
            f"needs --cluster and a node token ({NODE_TOKEN_ENV} or "
            "--node-token-file)."
        ),
    ] = None,
    node_name: Annotated[
        str | None,
        typer.Option(
            help="This node's name, as the orchestrator names the worker; default this "
            "machine's hostname (Oakestra's name of a worker)."
        ),
    ] = None,
    cluster: Annotated[str | None, typer.Option(help="The cluster this node belongs to.")] = None,
    platform: Annotated[
        str | None,
        typer.Option(help=f"This node's platform; default this machine's ({this_platform()})."),
    ] = None,
    advertise_address: Annotated[
        str | None,
        typer.Option(
            help="The address other hosts reach this node at; default this host's source "
            "address towards the manager's host."
        ),
    ] = None,
    report_every_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds between two reports to the manager.")
    ] = 15.0,
    node_token_file: Annotated[
        Path | None,
        typer.Option(
            help=f"A file (mode 600) holding the node token; default: ${NODE_TOKEN_ENV}.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the data server until SIGTERM or SIGINT (Ctrl-C)."""
    configure_logging(log_level)
    data_dir = data_dir.expanduser()
    node: NodeIdentity | None = None
    token: str | None = None
    if manager_url is not None:
        token, node = _node_settings(
            manager_url, node_name, cluster, platform, advertise_address, port, node_token_file
        )
        advertise_host = advertise_host or (
            f"[{node.address}]" if ":" in node.address else node.address
        )
    elif any(v is not None for v in (node_name, cluster, platform, advertise_address)) or (
        node_token_file is not None
    ):
        _usage_error(
            "--node-name, --cluster, --platform, --advertise-address and --node-token-file "
            "register the node with a manager: add --manager-url"
        )
    try:
        server = MLDataServer(data_dir, host=host, port=port, advertise_host=advertise_host)
    except OSError as e:
        _fail(f"cannot use data directory {data_dir}: {e.strerror or e}")
    except pa.ArrowException as e:
        _fail(f"cannot listen on {host}:{port} ({e}); is the port already in use?")
    reporter: NodeReporter | None = None
    if manager_url is not None and node is not None and token is not None:
        node = replace(node, port=server.port)
        reporter = NodeReporter(
            manager_url=manager_url, token=token, node=node, tags=server.stored_tags,
            reads=server.reads, every_s=report_every_s,
        )  # fmt: skip
        server.subscribe(reporter.poke)
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _request_shutdown)
        logger.info(
            "ML data server ready on %s:%s, advertised as %s, serving %s datasets from %s",
            host,
            server.port,
            server.location,
            len(server.dataset_names()),
            data_dir,
        )
        if reporter is not None:
            reporter.start()
        while True:
            time.sleep(3600)
    except _ShutdownRequested as e:
        logger.info("Received %s, shutting down", e)
    finally:
        if reporter is not None:
            reporter.close()
        server.shutdown()
    logger.info("ML data server stopped")


def _node_settings(
    manager_url: str,
    node_name: str | None,
    cluster: str | None,
    platform: str | None,
    advertise_address: str | None,
    port: int,
    token_file: Path | None,
) -> tuple[str, NodeIdentity]:
    """The node token and identity for `--manager-url`; exits with status 2 on a bad setting."""
    if not cluster:
        _usage_error("--manager-url needs --cluster (the cluster this node belongs to)")
    # Oakestra names a worker by its hostname (the NodeEngine reports os.Hostname()).
    node_name = node_name or socket.gethostname()
    if not manager_url.startswith(("http://", "https://")):
        _usage_error(f"--manager-url must be http://host:port or https://...; got {manager_url!r}")
    if not 1 <= len(cluster) <= 64:
        _usage_error("--cluster must be 1-64 characters")
    try:
        check_node_name(node_name)
        token = node_token(token_file)
        if token is None:
            _usage_error(
                f"--manager-url needs the node token, in the environment variable "
                f"{NODE_TOKEN_ENV} or in a file named by --node-token-file (never on the "
                f"command line); the admin issues it with `flops node-token create {node_name}`"
            )
        address = advertise_address or source_address_towards(manager_url)
    except ConfigurationError as e:
        _usage_error(str(e))
    identity = NodeIdentity(
        name=node_name, cluster=cluster, platform=platform or this_platform(), address=address,
        port=port, version=data_server_version(),
    )  # fmt: skip
    return token, identity


@app.command()
def push(
    file: Annotated[Path, typer.Argument(help="A .parquet or .csv file.")],
    tag: Annotated[str, typer.Option("--tag", "-t", help="The data tag to store it under.")],
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Store a parquet or CSV file on a data server under a data tag."""
    with _user_errors(), MLDataClient(server) as client:
        name = client.push_file(tag, file)
    typer.echo(f"Stored {file} as {name} on {client.address}")


@app.command("list")
def list_datasets(
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="Only datasets with this data tag; repeatable."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Show the datasets stored on a data server."""
    with _user_errors(), MLDataClient(server) as client:
        infos = client.list_datasets(tag or None)
    if not infos:
        which = f" with data tags {tag}" if tag else ""
        typer.echo(f"No datasets{which} on {client.address}")
        return
    table = Table(title=f"Datasets on {client.address}")
    table.add_column("Tag", no_wrap=True)
    table.add_column("Rows", justify="right", no_wrap=True)
    table.add_column("Bytes", justify="right", no_wrap=True)
    table.add_column("Name (for drop)", overflow="fold")
    for info in infos:
        table.add_row(info.tag, f"{info.rows:,}", f"{info.bytes:,}", info.name)
    Console().print(table)


@app.command()
def drop(
    name: Annotated[str, typer.Argument(help="The dataset name, as shown by `list`.")],
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Delete one dataset from a data server."""
    with _user_errors(), MLDataClient(server) as client:
        client.drop_dataset(name)
    typer.echo(f"Dropped {name} from {client.address}")
