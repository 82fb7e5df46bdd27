"""The one command runner: output (merged or apart), redaction, streaming, timeouts that kill."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from flops_core.commands import CommandTimeoutError, command_line, redact_text, run_command
from tests.conftest import eventually

SECRET_URL = "https://alice:s3cret@index.example/simple"
REDACTED_URL = "https://***@index.example/simple"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie waiting to be reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_merged_output_keeps_order_and_redacts_credentials() -> None:
    # Prepare
    code = (
        "import sys; print('one', flush=True); print('two', file=sys.stderr, flush=True); "
        f"print('index {SECRET_URL}', flush=True); sys.exit(3)"
    )

    # Execute
    result = run_command(_python(code), timeout=30)

    # Assert
    assert result.returncode == 3
    assert result.output == f"one\ntwo\nindex {REDACTED_URL}\n"
    assert result.lines == ("one", "two", f"index {REDACTED_URL}")
    assert result.errors == ""
    assert "s3cret" not in result.tail()


def test_split_output_keeps_stderr_apart_and_redacted() -> None:
    # Prepare
    code = f"import sys; print('{{\"ok\": 1}}'); print('failed at {SECRET_URL}', file=sys.stderr)"

    # Execute
    result = run_command(_python(code), timeout=30, merge_output=False)

    # Assert
    assert result.output == '{"ok": 1}\n'
    assert result.errors == f"failed at {REDACTED_URL}\n"
    assert result.tail(1) == f"failed at {REDACTED_URL}"


def test_tail_gives_the_last_non_blank_lines_as_text_or_list() -> None:
    # Prepare
    code = "print('a'); print(); print('b   '); print('c\\r'); print('  ')"

    # Execute
    result = run_command(_python(code), timeout=30)

    # Assert
    assert result.tail_lines(2) == ["b", "c"]
    assert result.tail(5) == "a\nb\nc"


def test_each_line_reaches_the_callback_and_the_log_file_redacted_as_it_comes(
    tmp_path: Path,
) -> None:
    # Prepare: the second line is written only once the first has been handed over
    go = tmp_path / "go"
    code = (
        "import os, time; print('first', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        f"print('push to {SECRET_URL}')"
    )
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        go.touch()

    log = tmp_path / "build.log"
    log.write_text("earlier\n")

    # Execute
    result = run_command(_python(code), timeout=30, on_line=on_line, log_file=log)

    # Assert
    assert seen == ["first", f"push to {REDACTED_URL}"]
    assert log.read_text() == f"earlier\nfirst\npush to {REDACTED_URL}\n"
    assert result.lines == tuple(seen)


def test_environment_and_working_directory_are_the_given_ones(tmp_path: Path) -> None:
    # Prepare
    code = "import os; print(os.getcwd()); print(os.environ.get('FLOPS_X', '-'))"

    # Execute
    result = run_command(_python(code), timeout=30, cwd=tmp_path, env={"FLOPS_X": "given"})

    # Assert
    assert result.lines == (str(tmp_path), "given")


def test_timeout_kills_everything_the_command_started_and_keeps_its_output(
    tmp_path: Path,
) -> None:
    # Prepare: a shell that starts a grandchild, says so, then runs on
    pid_file = tmp_path / "grandchild.pid"
    command = ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo 'at {SECRET_URL}'; sleep 60"]
    started = time.monotonic()

    # Execute
    with pytest.raises(CommandTimeoutError) as raised:
        run_command(command, timeout=1.5)

    # Assert
    assert time.monotonic() - started < 10
    assert str(raised.value) == "sh ran longer than 1.5 s"
    assert raised.value.lines == [f"at {REDACTED_URL}"]
    grandchild = int(pid_file.read_text())
    eventually(lambda: _gone(grandchild), "the grandchild is killed with its group", 10)


def test_a_background_process_holding_the_output_open_counts_as_running(tmp_path: Path) -> None:
    # Prepare: the command exits at once, its background child keeps stdout open
    command = ["sh", "-c", "sleep 60 & echo left"]
    started = time.monotonic()

    # Execute
    with pytest.raises(CommandTimeoutError) as raised:
        run_command(command, timeout=1.0)

    # Assert
    assert time.monotonic() - started < 10
    assert raised.value.lines == ["left"]


def test_a_missing_program_raises_oserror() -> None:
    with pytest.raises(OSError):
        run_command(["/nonexistent/flops-no-such-program"], timeout=5)


def test_the_command_line_is_logged_redacted(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    command = [sys.executable, "-c", "pass", "--index-url", SECRET_URL]

    # Execute
    with caplog.at_level(logging.DEBUG, logger="flops"):
        run_command(command, timeout=30)

    # Assert
    assert f"running {command_line(command)}" in caplog.messages
    assert not any("s3cret" in message for message in caplog.messages)
    assert command_line(command).endswith(f"--index-url {REDACTED_URL}")


def test_redact_text_replaces_credentials_of_every_url_and_leaves_the_rest() -> None:
    text = f"a {SECRET_URL} b git+https://tok@host/repo.git c http://plain/ d"

    assert redact_text(text) == (
        f"a {REDACTED_URL} b git+https://***@host/repo.git c http://plain/ d"
    )
