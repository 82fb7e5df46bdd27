"""The one error base of FLOps: every family of FLOps errors derives from `FlopsError`.

Like kopf's `TemporaryError` / `PermanentError`, each error says whether trying again may
help (`retryable`). It is declared once, here: a family whose errors are all of one kind
derives from `TemporaryError` or `PermanentError`; a mixed family derives from `FlopsError`
(not retryable), and its retryable classes derive from `TemporaryError` too, e.g.
`class RegistryUnavailableError(RegistryError, TemporaryError)`. Generic code (the mock-data
job's retry hint, the API's 503 mapping) asks `retryable` or `TemporaryError`, never a list
of classes.

The SDK (`flops_utils`) imports nothing of FLOps, so its data-client errors are a separate,
standalone tree with their own `retryable`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigurationError", "FlopsError", "PermanentError", "TemporaryError"]


class FlopsError(Exception):
    """Base of every FLOps error; the message is one line a user can act on, with no secrets.

    Parameters
    ----------
    reason : str
        What went wrong and what to do about it.
    output : Sequence[str]
        The relevant last lines of a failed command's output (credentials redacted), if any.

    Attributes
    ----------
    retryable : bool
        Whether the same request may succeed later (a service down, a network error), as
        opposed to a permanent fault of the input or the set-up. Classes set it; an instance
        may override it (an error that wraps another takes the wrapped one's).
    """

    retryable: bool = False

    def __init__(self, reason: str = "", *, output: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = list(output)


class TemporaryError(FlopsError):
    """Base of errors that may go away when the same request is made again later."""

    retryable = True


class PermanentError(FlopsError):
    """Base of errors that repeat until the input or the set-up is changed."""

    retryable = False


class ConfigurationError(PermanentError, ValueError):
    """Raised at start when a service's settings or configuration cannot work; exit code 2.

    The manager raises it for settings it cannot run with (no admin token), the aggregator
    for a configuration it cannot run (strategy, address, repo). Both processes then exit
    with `exit_code`. It stays a `ValueError`, as the manager's was.
    """

    exit_code: int = 2
