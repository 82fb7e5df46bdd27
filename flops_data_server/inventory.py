"""What a node tells the manager about its data: rows per stored tag, and who read it.

Neither ever includes the data itself. Row counts come from the parquet footers (a few KB
read per dataset, remembered per file version), reads from the caller's address of each
`do_get` as gRPC reports it (`context.peer()`).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from flops_core.logs import get_logger

__all__ = ["ReadCounter", "TagRows", "reader_host", "tag_of"]

_log = get_logger("data_server")


def tag_of(name: str) -> str:
    """Return the data tag of a dataset name: the part before the first `.`."""
    return name.split(".", 1)[0]


def reader_host(peer: str) -> str:
    """The caller's host from a gRPC peer string, e.g. `10.0.0.2` from `ipv4:10.0.0.2:53422`.

    gRPC writes IPv6 peers as `ipv6:[::1]:53422`, sometimes percent-encoded
    (`ipv6:%5B::1%5D:53422`); the host is then `::1`. Anything else (a Unix socket, an empty
    peer) is returned as it is, or as `unknown` when empty.
    """
    text = unquote(peer)
    scheme, _, rest = text.partition(":")
    if scheme not in ("ipv4", "ipv6") or not rest:
        return text or "unknown"
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        host = rest
    return host.removeprefix("[").removesuffix("]")


class TagRows:
    """Rows per data tag of the datasets in a directory, read from their parquet metadata.

    The count of each file is remembered by (name, size, modification time), so a report
    reads only the footers of datasets stored since the last one.

    Parameters
    ----------
    data_dir : Path
        The data server's directory (one `<tag>.<id>.parquet` file per dataset).
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, int, int], int] = {}

    def __call__(self, names: list[str]) -> dict[str, int]:
        """Return stored tag -> total rows over the datasets `names` (files in the directory).

        A file that disappeared meanwhile or is not readable parquet is left out.
        """
        totals: Counter[str] = Counter()
        seen: dict[tuple[str, int, int], int] = {}
        with self._lock:
            for name in names:
                path = self._data_dir / name
                try:
                    stat = path.stat()
                    key = (name, stat.st_size, stat.st_mtime_ns)
                    rows = self._rows.get(key)
                    if rows is None:
                        rows = int(pq.read_metadata(path).num_rows)
                except FileNotFoundError:
                    continue
                except (OSError, pa.ArrowException) as e:
                    _log.debug("Leaving dataset %s out of the node report: %s", name, e)
                    continue
                seen[key] = rows
                totals[tag_of(name)] += rows
            self._rows = seen
        return dict(totals)


class ReadCounter:
    """How many datasets each reader host was served (`do_get` calls), since the start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: Counter[str] = Counter()

    def add(self, host: str) -> None:
        """Count one read by `host`."""
        with self._lock:
            self._reads[host] += 1

    def snapshot(self) -> dict[str, int]:
        """Reader host -> reads so far."""
        with self._lock:
            return dict(self._reads)
