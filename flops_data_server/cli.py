"""Command line of the ML data server: `flops-data-server serve|push|list|drop`."""

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from flops_core.cli_options import cli_app
from flops_core.logs import configure_logging, get_logger
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
) -> None:
    """Run the data server until SIGTERM or SIGINT (Ctrl-C)."""
    configure_logging(log_level)
    data_dir = data_dir.expanduser()
    try:
        server = MLDataServer(data_dir, host=host, port=port, advertise_host=advertise_host)
    except OSError as e:
        _fail(f"cannot use data directory {data_dir}: {e.strerror or e}")
    except pa.ArrowException as e:
        _fail(f"cannot listen on {host}:{port} ({e}); is the port already in use?")
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
        while True:
            time.sleep(3600)
    except _ShutdownRequested as e:
        logger.info("Received %s, shutting down", e)
    finally:
        server.shutdown()
    logger.info("ML data server stopped")


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
