"""One way for tests (and the benchmarks) to wait for a condition: `eventually`.

Polling loops written by hand (`while time.monotonic() < deadline: ...`) are not used
anywhere else in `tests/` and `bench/`; `tests/test_waiting.py` checks that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitFailed", "eventually"]

T = TypeVar("T")

#: Characters of the last value a failure message shows.
_SHOWN = 2000


class WaitFailed(AssertionError, RuntimeError):
    """What was awaited did not come within the time, or can no longer come.

    A failed assertion to pytest; a `RuntimeError` to the benchmarks, which end with a
    message on those.
    """


def eventually(
    check: Callable[[], T],
    what: str | Callable[[], str],
    timeout: float = 60.0,
    *,
    until: Callable[[T], object] = bool,
    interval: float = 0.3,
    retry_on: tuple[type[Exception], ...] = (),
    give_up: Callable[[], str | None] | None = None,
) -> T:
    """Call `check()` until `until(value)` holds; return that value.

    Parameters
    ----------
    check : callable
        Reads the current value: a project, a response, whether a process is gone.
    what : str or callable
        What is awaited, for the failure message. A callable is asked only on failure (to
        add, say, a log as it is then).
    timeout : float
        Seconds before the wait fails.
    until : callable
        Whether a value is the awaited one; default: the value is truthy.
    interval : float
        Seconds between two calls of `check`.
    retry_on : tuple of exception types
        Exceptions of `check()` that mean "not yet" (a server still starting); any other
        exception ends the wait at once.
    give_up : callable
        Asked after every check that did not succeed: a non-empty answer says why the value
        can no longer come (the process exited) and ends the wait at once.

    Returns
    -------
    The first value of `check()` for which `until` holds.

    Raises
    ------
    WaitFailed
        After `timeout` s, naming `what` and the last value (or the last exception that
        `retry_on` let pass); or at once, with `give_up`'s answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except retry_on as e:
            last = f"{type(e).__name__}: {e}"
        else:
            if until(value):
                return value
            last = repr(value)
        if give_up is not None and (reason := give_up()):
            raise WaitFailed(f"{_text(what)}: {reason}")
        if time.monotonic() >= deadline:
            shown = last if len(last) <= _SHOWN else f"{last[:_SHOWN]}..."
            raise WaitFailed(f"not within {timeout:g} s: {_text(what)} (last: {shown})")
        time.sleep(interval)


def _text(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()
