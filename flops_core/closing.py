"""`Closing`: the `with` statement for any object that has a `close()` method."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closing"]


class Closing:
    """Base for objects that hold resources: `with obj:` calls `obj.close()` on the way out.

    Subclasses implement `close()`; `__enter__` returns the object itself.
    """

    def close(self) -> None:
        """Release what the object holds; subclasses say what that is."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
