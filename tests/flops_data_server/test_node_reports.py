"""A data server started with a manager URL registers its node and keeps the manager told
which tags it holds (with row counts) and who read its data, whatever the manager answers."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flops_data_server import MLDataServer
from flops_data_server.cli import _node_settings, app
from flops_data_server.inventory import reader_host
from flops_data_server.node_identity import this_platform
from flops_data_server.node_reporter import NodeIdentity, NodeReporter
from tests.conftest import eventually, free_port
from tests.flops_data_server.node_receiver import NodeReceiver, ReceivedReport

TOKEN = "flops_node_" + uuid.uuid4().hex  # a made-up node token, distinct per run

StartReporter = Callable[..., NodeReporter]


@pytest.fixture
def receiver() -> Iterator[NodeReceiver]:
    made = NodeReceiver()
    yield made
    made.close()


@pytest.fixture
def flops_logs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Let caplog see the `flops.*` records at INFO (an entry point may have cut them off)."""
    monkeypatch.setattr(logging.getLogger("flops"), "propagate", True)
    caplog.set_level(logging.INFO, logger="flops")


@pytest.fixture
def start_reporter(data_server: MLDataServer, receiver: NodeReceiver) -> Iterator[StartReporter]:
    """Report `data_server` as node `n1` of cluster `c1` to `receiver`; closed after."""
    reporters: list[NodeReporter] = []

    def start(every_s: float = 60.0) -> NodeReporter:
        node = NodeIdentity(
            name="n1", cluster="c1", platform="linux/arm64", address="10.9.0.2",
            port=data_server.port, version="1.2.3",
        )  # fmt: skip
        reporter = NodeReporter(
            manager_url=receiver.url, token=TOKEN, node=node, tags=data_server.stored_tags,
            reads=data_server.reads, every_s=every_s,
        )  # fmt: skip
        data_server.subscribe(reporter.poke)
        reporters.append(reporter)
        reporter.start()
        return reporter

    yield start
    for reporter in reporters:
        reporter.close()


def put(client: flight.FlightClient, tag: str, rows: int) -> None:
    """Upload a table of `rows` rows under `tag`, as the mock data provider does."""
    table = pa.table({"x": list(range(rows))})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path(tag), table.schema)
    writer.write_table(table)
    writer.close()


def report_where(
    receiver: NodeReceiver, what: str, check: Callable[[ReceivedReport], bool]
) -> ReceivedReport:
    """Wait for the first report that passes `check`."""
    return eventually(
        lambda: next((r for r in receiver.received() if check(r)), None),
        lambda: f"a report with {what}; got {[r.body for r in receiver.received()][-3:]}",
        10,
        interval=0.05,
    )


def test_the_first_report_says_who_the_node_is(
    start_reporter: StartReporter, receiver: NodeReceiver, data_server: MLDataServer
) -> None:
    # Execute
    start_reporter()

    # Assert
    report = report_where(receiver, "anything", lambda r: True)
    assert report.node == "n1"
    assert report.authorization == f"Bearer {TOKEN}"
    assert report.body == {
        "cluster": "c1", "platform": "linux/arm64", "address": "10.9.0.2",
        "port": data_server.port, "tags": {}, "reads": {}, "version": "1.2.3",
    }  # fmt: skip


def test_a_push_is_reported_within_a_second_with_its_rows_per_tag(
    start_reporter: StartReporter, receiver: NodeReceiver, flight_client: flight.FlightClient
) -> None:
    # Prepare: the periodic report is a minute away, so only the push can trigger one
    start_reporter(every_s=60.0)
    report_where(receiver, "the first report", lambda r: True)

    # Execute
    pushed = time.monotonic()
    put(flight_client, "acme:digits", 30)
    put(flight_client, "acme:digits", 12)
    put(flight_client, "digits", 5)
    report = report_where(
        receiver, "all pushes", lambda r: r.body["tags"] == {"acme:digits": 42, "digits": 5}
    )

    # Assert
    assert time.monotonic() - pushed < 1.5
    assert report.body["reads"] == {}


def test_a_dropped_dataset_leaves_the_report(
    start_reporter: StartReporter, receiver: NodeReceiver, flight_client: flight.FlightClient,
    data_server: MLDataServer,
) -> None:  # fmt: skip
    # Prepare
    put(flight_client, "digits", 5)
    start_reporter()
    report_where(receiver, "the tag", lambda r: r.body["tags"] == {"digits": 5})

    # Execute
    [name] = data_server.dataset_names()
    list(flight_client.do_action(flight.Action("drop_dataset", name.encode())))

    # Assert
    report_where(receiver, "no tags", lambda r: r.body["tags"] == {})


def test_reads_are_counted_per_reader_host_and_logged(
    start_reporter: StartReporter, receiver: NodeReceiver, flight_client: flight.FlightClient,
    data_server: MLDataServer, caplog: pytest.LogCaptureFixture, flops_logs: None,
) -> None:  # fmt: skip
    # Prepare
    put(flight_client, "digits", 7)
    [name] = data_server.dataset_names()
    start_reporter()

    # Execute
    for _ in range(2):
        flight_client.do_get(flight.Ticket(name.encode())).read_all()

    # Assert
    report_where(receiver, "2 reads", lambda r: r.body["reads"] == {"127.0.0.1": 2})
    served = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Served")]
    assert served == [f"Served {name} (7 rows) to 127.0.0.1"] * 2


def test_a_refused_token_is_logged_once_clearly_and_data_is_still_served(
    start_reporter: StartReporter, receiver: NodeReceiver, flight_client: flight.FlightClient,
    data_server: MLDataServer, caplog: pytest.LogCaptureFixture, flops_logs: None,
) -> None:  # fmt: skip
    # Prepare
    receiver.status = 401

    # Execute: several refused reports (the first, then one per push and read)
    start_reporter()
    report_where(receiver, "the first report", lambda r: True)
    put(flight_client, "digits", 3)
    report_where(receiver, "the push", lambda r: r.body["tags"] == {"digits": 3})
    [name] = data_server.dataset_names()
    rows = flight_client.do_get(flight.Ticket(name.encode())).read_all().num_rows
    report_where(receiver, "the read", lambda r: r.body["reads"] == {"127.0.0.1": 1})
    refused = len(receiver.received())
    receiver.status = 200  # the admin registered the token after all
    flight_client.do_get(flight.Ticket(name.encode())).read_all()
    report_where(receiver, "the second read", lambda r: r.body["reads"] == {"127.0.0.1": 2})

    # Assert
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert refused >= 3
    assert len(errors) == 1, errors
    assert "refused the node token of node n1 (HTTP 401" in errors[0]
    assert "`flops node-token create n1`" in errors[0]
    assert rows == 3
    eventually(lambda: "Node n1 is registered" in caplog.text, "the recovery logged", 5)
    assert TOKEN not in caplog.text


def test_an_unreachable_manager_is_one_warning_while_retrying(
    data_server: MLDataServer, caplog: pytest.LogCaptureFixture, flops_logs: None
) -> None:
    # Prepare: nothing listens at the manager URL
    node = NodeIdentity(name="n1", cluster="c1", platform="linux/amd64", address="x", port=1)
    reporter = NodeReporter(
        manager_url=f"http://127.0.0.1:{free_port()}", token=TOKEN, node=node,
        tags=data_server.stored_tags, reads=data_server.reads, every_s=0.2,
    )  # fmt: skip

    # Execute
    reporter.start()
    try:
        eventually(lambda: reporter.failures >= 4, "4 failed reports", 10, interval=0.05)
    finally:
        reporter.close()

    # Assert
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Cannot reach the manager" in warnings[0].getMessage()
    assert "ConnectError" in warnings[0].getMessage()
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.0.0.2:53422", "10.0.0.2"),
        ("ipv6:[::1]:53422", "::1"),
        ("ipv6:%5B::1%5D:53422", "::1"),
        ("ipv6:[fe80::1%25eth0]:1", "fe80::1%eth0"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
        ("", "unknown"),
    ],
)
def test_reader_host_of_grpc_peers(peer: str, host: str) -> None:
    assert reader_host(peer) == host


# --- command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_logging_restored() -> Iterator[None]:
    """Put the `flops` logger back after a command that configures logging in-process."""
    flops = logging.getLogger("flops")
    saved = (flops.level, flops.propagate, list(flops.handlers))
    yield
    flops.setLevel(saved[0])
    flops.propagate = saved[1]
    flops.handlers[:] = saved[2]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, ["FLOPS_NODE_TOKEN", "--node-token-file", "flops node-token create w1"]),
        (["--node-token-file", "/nonexistent/token"], {}, ["/nonexistent/token"]),
        (["--node-name", "-bad"], {"FLOPS_NODE_TOKEN": TOKEN}, ["-bad", "node name"]),
    ],
)
def test_cli_with_a_manager_url_but_no_usable_token_or_name_exits_2(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: list[str],
    monkeypatch: pytest.MonkeyPatch, cli_logging_restored: None,
) -> None:  # fmt: skip
    # Prepare
    monkeypatch.delenv("FLOPS_NODE_TOKEN", raising=False)
    base = ["serve", "--port", "0", "--data-dir", str(tmp_path), "--manager-url",
            "http://127.0.0.1:1", "--node-name", "w1", "--cluster", "c1"]  # fmt: skip

    # Execute
    result = CliRunner().invoke(app, [*base, *args], env=env)

    # Assert
    assert result.exit_code == 2, result.output
    assert all(text in result.stderr for text in expected), result.stderr
    assert TOKEN not in result.output


def test_cli_node_options_need_a_manager_url(tmp_path: Path, cli_logging_restored: None) -> None:
    # Execute
    result = CliRunner().invoke(
        app, ["serve", "--port", "0", "--data-dir", str(tmp_path), "--node-name", "w1"]
    )

    # Assert
    assert result.exit_code == 2
    assert "add --manager-url" in result.stderr


@pytest.mark.e2e
def test_cli_server_registers_reports_pushes_and_keeps_the_token_secret(
    tmp_path: Path, receiver: NodeReceiver
) -> None:
    # Prepare
    port = free_port()
    cli = [sys.executable, "-m", "flops_data_server"]
    token_file = tmp_path / "node-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)  # readable by others: used, with a warning
    env = {**os.environ, "FLOPS_NODE_TOKEN": "not-this-one"}
    server = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
         str(tmp_path / "data"), "--manager-url", receiver.url, "--node-name", "w1",
         "--cluster", "c1", "--node-token-file", str(token_file), "--report-every-s", "30"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        first = report_where(receiver, "the first report", lambda r: True)
        argv = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        parquet = tmp_path / "part.parquet"
        pq.write_table(pa.table({"x": [1, 2, 3]}), parquet)

        # Execute
        push = subprocess.run(
            [*cli, "push", str(parquet), "--tag", "demo", "--server", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        pushed = report_where(receiver, "the push", lambda r: r.body["tags"] == {"demo": 3})
    finally:
        server.terminate()
        _, log = server.communicate(timeout=15)

    # Assert
    assert push.returncode == 0, push.stderr
    assert first.node == "w1" and first.authorization == f"Bearer {TOKEN}"
    assert first.body["address"] == "127.0.0.1"  # the source address towards the manager
    assert first.body["platform"] == this_platform()
    assert (first.body["cluster"], first.body["port"]) == ("c1", port)
    assert pushed.body["reads"] == {}
    assert "chmod 600" in log and "registered" in log
    assert TOKEN not in argv and TOKEN not in log
    assert server.returncode == 0, log


def test_the_node_name_defaults_to_the_hostname_as_oakestra_names_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    monkeypatch.setenv("FLOPS_NODE_TOKEN", TOKEN)

    # Execute
    token, node = _node_settings("http://127.0.0.1:1", None, "c1", None, "10.0.0.2", 11027, None)

    # Assert
    assert node.name == socket.gethostname()
    assert (token, node.cluster, node.address) == (TOKEN, "c1", "10.0.0.2")
