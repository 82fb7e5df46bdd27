"""Ask a PEP 503 "simple" package index (PyPI or a mirror) whether a project exists."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from packaging.utils import canonicalize_name

from flops_core.closing import Closing
from flops_core.errors import FlopsError, TemporaryError
from flops_core.logs import get_logger

__all__ = ["PackageIndex", "PackageIndexError", "PackageIndexUnavailableError"]

_logger = get_logger("utils.package_index")

_NOT_FOUND = frozenset({404, 410})
_RETRYABLE = frozenset({429})


class PackageIndexError(FlopsError):
    """Raised when the index refuses a lookup for good (e.g. 401, 403); permanent."""


class PackageIndexUnavailableError(PackageIndexError, TemporaryError):
    """Raised when the index is unreachable or answers 5xx/429 after all retries; retryable."""


class PackageIndex(Closing):
    """A PEP 503 "simple" index: `GET {index_url}/{normalized-name}/` tells if a project exists.

    200 means the project exists, 404 (or 410) that it does not. Connection errors,
    timeouts, 5xx and 429 answers are retried with exponential backoff and jitter, then
    raise `PackageIndexUnavailableError`. Answers are cached per instance. A `file://` URL
    names a local simple-index folder, as pip accepts. Use it as a context manager, or call
    `close()`, to release the HTTP connections.

    Parameters
    ----------
    index_url : str
        The simple index root, e.g. `https://pypi.org/simple`; chosen by the caller.
    timeout : float
        Seconds one HTTP request may take (connect, read).
    retries : int
        How many times a failed lookup is retried before giving up.
    backoff : float
        Seconds before the first retry; doubled for each further one, at most `max_backoff`.
    max_backoff : float
        The longest wait between two attempts, in seconds.
    sleep : Callable[[float], None]
        How to wait between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        index_url: str,
        *,
        timeout: float,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.index_url = index_url.rstrip("/")
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._cache: dict[str, bool] = {}
        self._client = httpx.Client(timeout=timeout, follow_redirects=True)

    def exists(self, name: str) -> bool:
        """Return whether the index has a project called `name` (any PEP 503 spelling).

        Parameters
        ----------
        name : str
            The project name, e.g. `Scikit_Learn`; normalized per PEP 503 before the lookup.

        Raises
        ------
        PackageIndexUnavailableError
            When the index stays unreachable or keeps failing after all retries.
        PackageIndexError
            When the index refuses the lookup (an HTTP status other than 2xx, 404, 410,
            429 or 5xx).
        """
        project = canonicalize_name(name)
        if project not in self._cache:
            if self.index_url.startswith("file:"):
                folder = Path(unquote(urlparse(self.index_url).path)) / project
                self._cache[project] = folder.is_dir()
            else:
                self._cache[project] = self._lookup(f"{self.index_url}/{project}/")
        return self._cache[project]

    def _lookup(self, url: str) -> bool:
        problem = ""
        cause: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
                _logger.warning("package index: %s for %s; retry in %.2f s", problem, url, delay)
                self._sleep(delay)
            try:
                with self._client.stream("GET", url) as response:
                    status = response.status_code
            except httpx.InvalidURL as e:
                raise PackageIndexError(f"invalid package index URL {url!r}: {e}") from e
            except httpx.RequestError as e:
                problem, cause = f"{type(e).__name__}: {e}", e
                continue
            if 200 <= status < 300 or status in _NOT_FOUND:
                _logger.debug("package index: %s answered %s", url, status)
                return status not in _NOT_FOUND
            if status < 500 and status not in _RETRYABLE:
                raise PackageIndexError(f"package index refused {url}: HTTP {status}")
            problem, cause = f"HTTP {status}", None
        raise PackageIndexUnavailableError(
            f"package index {self.index_url} unavailable after {self._retries + 1} attempts "
            f"({problem})"
        ) from cause

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
