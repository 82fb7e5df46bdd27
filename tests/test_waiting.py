"""`tests.wait.eventually`, and that no test or benchmark polls with a loop of its own."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from tests.wait import WaitFailed, eventually

ROOT = Path(__file__).resolve().parents[1]

#: Where a polling loop may be written: the wait helper itself.
ALLOWED = {"tests/wait.py"}

_CLOCKS = {"monotonic", "time", "perf_counter", "monotonic_ns", "time_ns"}


def _called(node: ast.AST) -> str:
    """The name a call calls (`time.sleep(...)` -> `sleep`), or ""."""
    if not isinstance(node, ast.Call):
        return ""
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _reads_a_clock(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if _called(inner) in _CLOCKS:
            return True
        name = inner.id if isinstance(inner, ast.Name) else getattr(inner, "attr", "")
        if isinstance(name, str) and "deadline" in name.lower():
            return True
    return False


def polling_loops(source: str) -> list[int]:
    """Lines of the loops in `source` that poll by hand.

    A polling loop is a `while` loop whose condition reads a clock (or a `deadline`), or any
    loop whose body sleeps (`for _ in range(50): ...; time.sleep(0.1)`). An engine that waits
    on a condition variable until its next timer is due (`tests/fakes/oakestra/worker.py`)
    is not one.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.While | ast.For | ast.AsyncFor):
            continue
        sleeps = any(_called(inner) == "sleep" for inner in ast.walk(node))
        if sleeps or (isinstance(node, ast.While) and _reads_a_clock(node.test)):
            lines.append(node.lineno)
    return sorted(lines)


def test_no_test_or_benchmark_polls_with_a_loop_of_its_own() -> None:
    # Prepare
    files = sorted(itertools.chain((ROOT / "tests").rglob("*.py"), (ROOT / "bench").rglob("*.py")))

    # Execute
    found = [
        f"{relative}:{line}"
        for path in files
        if (relative := path.relative_to(ROOT).as_posix()) not in ALLOWED
        for line in polling_loops(path.read_text())
    ]

    # Assert
    assert found == [], (
        "hand-written polling loops (use tests.wait.eventually instead): " + ", ".join(found)
    )


@pytest.mark.parametrize(
    "source",
    [
        "import time\ndeadline = time.monotonic() + 5\nwhile time.monotonic() < deadline:\n"
        "    pass\n",
        "import time\nwhile True:\n    if time.time() > limit:\n        raise TimeoutError\n"
        "    time.sleep(1)\n",
        "import time\nfor _ in range(50):\n    if ready():\n        break\n    time.sleep(0.1)\n",
        "from time import sleep\nwhile not ready():\n    sleep(0.2)\n",
    ],
)
def test_the_check_finds_the_shapes_of_a_polling_loop(source: str) -> None:
    assert polling_loops(source) != []


def test_the_check_leaves_ordinary_loops_alone() -> None:
    source = "import time\nstarted = time.monotonic()\nfor x in range(3):\n    print(x)\n"

    assert polling_loops(source) == []


def test_eventually_returns_the_first_value_that_holds() -> None:
    # Prepare
    values = iter([1, 2, 3, 4])

    # Execute
    value = eventually(lambda: next(values), "a value over 2", 5, until=lambda v: v > 2, interval=0)

    # Assert
    assert value == 3


def test_eventually_fails_naming_what_it_awaited_and_the_last_value() -> None:
    with pytest.raises(
        WaitFailed, match=r"not within 0.05 s: the project completed \(last: 'pending'\)"
    ):
        eventually(lambda: "pending", "the project completed", 0.05, until=lambda s: s == "x")


def test_eventually_asks_a_callable_what_only_when_it_fails() -> None:
    # Prepare
    asked: list[int] = []

    def what() -> str:
        asked.append(1)
        return "the log says: nothing yet"

    # Execute
    eventually(lambda: True, what, 1)
    with pytest.raises(WaitFailed, match="the log says: nothing yet"):
        eventually(lambda: False, what, 0.01, interval=0)

    # Assert
    assert asked == [1]


def test_eventually_retries_only_the_exceptions_it_is_told_to() -> None:
    # Prepare
    calls = itertools.count()

    def check() -> int:
        if (n := next(calls)) < 2:
            raise ConnectionError("not listening yet")
        return n

    # Execute
    value = eventually(check, "a server listening", 5, interval=0, retry_on=(ConnectionError,))

    # Assert
    assert value == 2
    with pytest.raises(ValueError, match="broken"):
        eventually(lambda: int("broken"), "a number", 5, retry_on=(ConnectionError,))
    with pytest.raises(WaitFailed, match=r"last: ConnectionError: refused"):
        eventually(_refused, "a server", 0.01, interval=0, retry_on=(ConnectionError,))


def test_eventually_gives_up_at_once_when_told_why() -> None:
    with pytest.raises(WaitFailed, match="the manager healthy: exited with 2"):
        eventually(lambda: False, "the manager healthy", 60, give_up=lambda: "exited with 2")


def _refused() -> bool:
    raise ConnectionError("refused")
