"""What a data server started with `--manager-url` finds out about its node: platform, address,
version, and its node token (from the environment or a file, never the command line)."""

from __future__ import annotations

import os
import platform
import re
import socket
import stat
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

from flops_core.errors import ConfigurationError
from flops_core.logs import get_logger

__all__ = [
    "NODE_NAME_PATTERN",
    "NODE_TOKEN_ENV",
    "check_node_name",
    "data_server_version",
    "node_token",
    "source_address_towards",
    "this_platform",
]

#: The environment variable holding the node token.
NODE_TOKEN_ENV = "FLOPS_NODE_TOKEN"
#: Node names as Oakestra names workers (and as the manager accepts them).
NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

_log = get_logger("data_server")
_ARCHITECTURES = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm/v7", "armv6l": "arm/v6", "i386": "386", "i686": "386",
}  # fmt: skip
_NODE_NAME = re.compile(NODE_NAME_PATTERN)


def this_platform() -> str:
    """This machine's platform as container images name it, e.g. `linux/amd64`."""
    machine = platform.machine().lower()
    return f"{platform.system().lower()}/{_ARCHITECTURES.get(machine, machine)}"


def data_server_version() -> str:
    """The installed FLOps version (`0.0.0` when run from a tree that is not installed)."""
    try:
        return version("flops")
    except PackageNotFoundError:
        return "0.0.0"


def check_node_name(name: str) -> str:
    """Return `name` if it is a valid node name, else raise `ConfigurationError`."""
    if not _NODE_NAME.match(name):
        raise ConfigurationError(
            f"--node-name {name!r} is not a node name: 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def source_address_towards(manager_url: str) -> str:
    """This host's address on the route to the manager's host: what the manager reaches it at.

    A UDP socket is `connect`ed to the manager's host (no packet is sent) and its local
    address read.

    Raises
    ------
    ConfigurationError
        When the URL has no host, the host does not resolve, or there is no route to it.
    """
    parts = urlsplit(manager_url)
    host = parts.hostname
    if not host:
        raise ConfigurationError(
            f"--manager-url {manager_url!r} has no host; expected e.g. http://10.0.0.1:5072"
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError as e:
        raise ConfigurationError(
            f"cannot find this host's address towards the manager's host {host!r} "
            f"({e.strerror or e}); pass --advertise-address"
        ) from e


def node_token(token_file: Path | None) -> str | None:
    """The node token: from `token_file` if given, else from `FLOPS_NODE_TOKEN`; None if neither.

    A token file that other users may read is used, with a warning to `chmod 600` it.

    Raises
    ------
    ConfigurationError
        When the file cannot be read or is empty.
    """
    if token_file is None:
        return os.environ.get(NODE_TOKEN_ENV, "").strip() or None
    try:
        mode = token_file.stat().st_mode
        token = token_file.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigurationError(f"cannot read --node-token-file {token_file}: {reason}") from e
    if not token:
        raise ConfigurationError(
            f"--node-token-file {token_file} is empty; put the node token from "
            "`flops node-token create <node>` in it"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning(
            "The node token file %s may be read by other users (mode %s); chmod 600 it",
            token_file, oct(stat.S_IMODE(mode)),
        )  # fmt: skip
    return token
