"""`flops mock-data`: how the options become the body of `POST /mocks` (IID by default)."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from flops_cli.main import app
from flops_cli.ui import CliState
from tests.flops_cli.conftest import FakeManager

MOCKS = "/api/flops/mocks"


def run(manager: FakeManager, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["--token", "t0ken", "mock-data", *args],
        obj=CliState(url="http://m.test", transport=manager.transport),
    )
    return result.exit_code, result.stdout, result.stderr


def manager() -> FakeManager:
    job = {
        "id": "m1", "url": "http://m.test/api/flops/mocks/m1", "state": "completed",
        "data_tag": "digits", "measure": {"name": "mean_pairwise_total_variation", "value": 0.8},
        "partitions": [{"partition": 0, "node": 0, "rows": 10, "dataset": "digits.x.parquet"}],
    }  # fmt: skip
    return FakeManager(
        {
            ("GET", "/api/flops/whoami"): httpx.Response(200, json={"customer_id": "acme"}),
            ("POST", MOCKS): httpx.Response(201, json=job),
        }
    )


def test_defaults_send_the_original_flops_body() -> None:
    fake = manager()

    code, out, _ = run(fake)

    assert code == 0, out
    assert fake.bodies(MOCKS) == [
        {
            "customerID": "acme",
            "mock_data_configuration": {
                "dataset_name": "digits", "number_of_partitions": 3, "data_tag": "digits",
            },
        }
    ]  # fmt: skip
    assert "Pushed 1 partitions of digits under tag digits (job m1; label skew 0.8)" in out


def test_dirichlet_file_and_label_column() -> None:
    fake = manager()

    code, out, _ = run(
        fake, "--file", "sub/points.csv", "--partitions", "4", "--partitioning", "dirichlet",
        "--alpha", "0.1", "--seed", "7", "--label-column", "kind", "--no-wait",
    )  # fmt: skip

    assert code == 0, out
    [request] = [r for r in fake.requests if r.url.path == MOCKS]
    assert request.url.params["wait"] == "false"
    assert fake.bodies(MOCKS) == [
        {
            "customerID": "acme",
            "mock_data_configuration": {
                "dataset_name": "sub/points.csv", "number_of_partitions": 4,
                "data_tag": "digits", "label_column": "kind",
            },
            "partitioning": {"kind": "dirichlet", "seed": 7, "alpha": 0.1},
        }
    ]  # fmt: skip


def test_dirichlet_needs_alpha_and_iid_refuses_it() -> None:
    fake = manager()

    no_alpha, _, err = run(fake, "--partitioning", "dirichlet")
    stray_alpha, _, err_iid = run(fake, "--alpha", "0.5")

    assert no_alpha == 2 and "needs --alpha" in err
    assert stray_alpha == 2 and "--partitioning dirichlet" in err_iid
    assert fake.bodies(MOCKS) == []
