"""Hugging Face hub datasets for mock data: which names they are, whether the hub answers, load.

The original FLOPs mock provider loaded datasets from the Hugging Face hub by name (`mnist`,
`cifar10`) with the `datasets` library and pushed the "train" split with the hub dataset's own
columns (mnist: `image`, `label`; cifar10: `img`, `label`) and features. FLOPS does the same:

- `check_hub_dataset` runs while the request is answered. It asks the hub for the repo's
  info (one GET, `HubAccess.timeout_s` at most), so that an unknown name is a 422 and a hub
  that cannot be reached a 503 at once, never a hung request. With `HF_HUB_OFFLINE` it only
  looks into the cache.
- `load_hub_dataset` runs in the mock-data job. The download can take minutes, so it runs
  `datasets.load_dataset(<repo>, split="train")` in a child process
  (`hub_dataset_load.py`) whose environment carries the manager's settings (endpoint,
  offline mode, timeouts, the cache under the data dir): the libraries read those from the
  environment when they are imported, and a child can be stopped when the job is deleted
  or takes longer than `HubAccess.load_timeout_s`. The child writes the split with
  `to_parquet`, so the table read back carries the features under `huggingface` in its
  schema metadata, as the original provider's partitions did.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from flops_core.errors import FlopsError, TemporaryError
from flops_core.logs import get_logger
from flops_manager.core.config import Settings

__all__ = [
    "ORIGINAL_HUB_NAMES",
    "HubAccess",
    "HubDatasetError",
    "HubDatasetNotFoundError",
    "HubUnavailableError",
    "check_hub_dataset",
    "hub_access_of",
    "is_hub_name",
    "load_hub_dataset",
    "repo_id_of",
]

#: Names the original FLOPs SLAs use -> the hub repos that hold those datasets today.
ORIGINAL_HUB_NAMES = {"mnist": "ylecun/mnist", "cifar10": "uoft-cs/cifar10"}
#: The split the original provider pushed.
SPLIT = "train"
_CHILD = "flops_manager.services.hub_dataset_load"
#: A hub repo id: `name` or `owner/name`, letters, digits, `-`, `_`, `.` (the hub's rule).
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$", re.ASCII)
_STDERR_TAIL = 4000
#: Exit code of the child when the hub cannot be reached (`hub_dataset_load.py`).
_UNREACHABLE_CODE = 3
_log = get_logger("manager.hub")


class HubDatasetError(FlopsError, ValueError):
    """Raised when a hub dataset cannot be used; the message is safe to show and names it."""


class HubDatasetNotFoundError(HubDatasetError):
    """Raised when the hub answers that it has no such dataset (or will not show it)."""


class HubUnavailableError(HubDatasetError, TemporaryError):
    """Raised when the hub cannot be reached (or access is offline); retryable, a 503."""


@dataclass(frozen=True)
class HubAccess:
    """How the manager reaches the Hugging Face hub; from `Settings` (`hub_access_of`).

    Parameters
    ----------
    enabled : bool
        Whether `dataset_name` may name hub datasets at all (`FLOPS_HUB_DATASETS`).
    endpoint : str
        The hub (`HF_ENDPOINT`).
    offline : bool
        Use only what is in the cache (`HF_HUB_OFFLINE`).
    timeout_s : float
        Seconds one request to the hub may take (the check; each request of a download).
    load_timeout_s : float
        Seconds a whole load (download and preparation) may take.
    cache_dir : Path
        Where downloads and prepared datasets are kept (`<data_dir>/huggingface`).
    """

    enabled: bool
    endpoint: str
    offline: bool
    timeout_s: float
    load_timeout_s: float
    cache_dir: Path

    def child_environment(self) -> dict[str, str]:
        """The environment of the loading child: this process's, with the settings above."""
        timeout = str(max(1, round(self.timeout_s)))
        return {
            **os.environ,
            "HF_ENDPOINT": self.endpoint,
            "HF_HUB_OFFLINE": "1" if self.offline else "0",
            "HF_HOME": str(self.cache_dir),
            "HF_HUB_CACHE": str(self.cache_dir / "hub"),
            "HF_DATASETS_CACHE": str(self.cache_dir / "datasets"),
            "HF_HUB_ETAG_TIMEOUT": timeout,
            "HF_HUB_DOWNLOAD_TIMEOUT": timeout,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }


def hub_access_of(settings: Settings) -> HubAccess:
    """The hub settings of a manager."""
    return HubAccess(
        enabled=settings.hub_datasets,
        endpoint=settings.hub_endpoint.rstrip("/"),
        offline=settings.hub_offline,
        timeout_s=settings.hub_timeout_s,
        load_timeout_s=settings.hub_load_timeout_s,
        cache_dir=settings.data_dir / "huggingface",
    )


def is_hub_name(name: str) -> bool:
    """Whether `name` has the form of a hub dataset id (`mnist`, `owner/name`)."""
    return bool(_REPO_ID.match(name)) and ".." not in name and "--" not in name


def repo_id_of(name: str) -> str:
    """The hub repo of `dataset_name`: the original FLOps names map to today's repos."""
    return ORIGINAL_HUB_NAMES.get(name, name)


def _cached(repo_id: str, hub: HubAccess) -> bool:
    folder = "datasets--" + repo_id.replace("/", "--")
    return (hub.cache_dir / "hub" / folder / "snapshots").is_dir()


def check_hub_dataset(name: str, hub: HubAccess) -> str:
    """Check that the hub has dataset `name` (or that it is cached, when offline).

    Returns the repo id to load. One request of at most `hub.timeout_s` seconds; redirects
    (renamed repos) are followed.

    Raises
    ------
    HubUnavailableError
        The hub cannot be reached or answers with a server error; offline and not cached.
    HubDatasetNotFoundError
        The hub has no such dataset (or it is private or gated).
    """
    repo_id = repo_id_of(name)
    if hub.offline:
        if _cached(repo_id, hub):
            return repo_id
        raise HubUnavailableError(
            f"hub access is offline (HF_HUB_OFFLINE) and {repo_id!r} is not in the cache "
            f"{hub.cache_dir}"
        )
    url = f"{hub.endpoint}/api/datasets/{repo_id}"
    try:
        response = httpx.get(url, timeout=hub.timeout_s, follow_redirects=True)
    except httpx.HTTPError as e:
        within = f" within {hub.timeout_s:g} s" if isinstance(e, httpx.TimeoutException) else ""
        raise HubUnavailableError(
            f"no answer from {hub.endpoint}{within} ({type(e).__name__}: {e or 'no answer'})"
        ) from e
    if response.status_code in (401, 403, 404):
        raise HubDatasetNotFoundError(
            f"the Hugging Face hub at {hub.endpoint} has no public dataset {repo_id!r}"
        )
    if response.status_code != 200:
        raise HubUnavailableError(f"{hub.endpoint} answered {response.status_code}")
    try:
        found = response.json().get("id")  # a renamed repo's new id
    except (ValueError, AttributeError):
        found = None
    return found if isinstance(found, str) and is_hub_name(found) else repo_id


def load_hub_dataset(repo_id: str, *, hub: HubAccess, cancel: threading.Event) -> pa.Table:
    """The "train" split of hub dataset `repo_id`, its features in the schema metadata.

    Runs `datasets.load_dataset` in a child process (see the module docstring) and waits for
    it; the child is killed when `cancel` is set or after `hub.load_timeout_s`.

    Raises
    ------
    HubUnavailableError
        The hub could not be reached during the download, or the load took too long.
    HubDatasetError
        The load failed otherwise (no "train" split, ...), or was cancelled.
    """
    hub.cache_dir.mkdir(parents=True, exist_ok=True)
    _log.info("loading %s (%s split) from %s into %s", repo_id, SPLIT, hub.endpoint, hub.cache_dir)
    with tempfile.TemporaryDirectory(prefix="load-", dir=hub.cache_dir) as work:
        out, log = Path(work) / f"{SPLIT}.parquet", Path(work) / "load.log"
        with log.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", _CHILD, repo_id, SPLIT, str(out)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=hub.child_environment(),
            )  # in the manager's process group: stopping the manager's group stops it too
        code = _wait(child, cancel=cancel, timeout_s=hub.load_timeout_s)
        if code is None:
            if cancel.is_set():
                raise HubDatasetError(f"loading {repo_id!r} from the hub was cancelled")
            raise HubUnavailableError(
                f"loading {repo_id!r} from the hub took longer than {hub.load_timeout_s:g} s "
                "(FLOPS_HUB_LOAD_TIMEOUT_S)"
            )
        if code != 0:
            reason = _last_line(log)
            kind = HubUnavailableError if code == _UNREACHABLE_CODE else HubDatasetError
            raise kind(f"could not load {repo_id!r} from the hub at {hub.endpoint}: {reason}")
        table = pq.read_table(out)
    _log.info("loaded %s: %s rows, columns %s", repo_id, table.num_rows, table.column_names)
    return table


def _wait(
    child: subprocess.Popen[bytes], *, cancel: threading.Event, timeout_s: float
) -> int | None:
    """The child's exit code; None if it was killed (cancelled or too slow)."""
    deadline = time.monotonic() + timeout_s
    while not cancel.is_set() and time.monotonic() < deadline:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            continue
    child.kill()
    child.wait()
    return None


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace")[-_STDERR_TAIL:].strip().splitlines()
    return lines[-1] if lines else "the loader exited without a message"
