"""`flops project create`: how the options become the FLOps body of `POST /projects`."""

from __future__ import annotations

import httpx
import pytest
import typer
from typer.testing import CliRunner

from flops_cli.main import app
from flops_cli.project_commands import parse_data_tags, parse_strategy_params, project_body
from flops_cli.ui import CliState
from tests.flops_cli.conftest import FakeManager, event, sse

PROJECTS = "/api/flops/projects"


def run(manager: FakeManager, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["--token", "t0ken", *args],
        obj=CliState(url="http://m.test", transport=manager.transport),
    )
    return result.exit_code, result.stdout, result.stderr


def created_manager() -> FakeManager:
    return FakeManager(
        {
            ("GET", "/api/flops/whoami"): httpx.Response(
                200, json={"customer_id": "acme", "is_admin": False}
            ),
            ("POST", PROJECTS): httpx.Response(
                201, json={"id": "p7", "url": "/api/flops/projects/p7", "state": "pending"}
            ),
        }
    )


def test_defaults_leave_client_counts_to_the_manager() -> None:
    body = project_body(
        repo_url="https://git.example/r.git", flavor="sklearn", data_tags=["d"], customer_id="c"
    )
    assert body == {
        "customerID": "c",
        "ml_repo_url": "https://git.example/r.git",
        "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["d"],
            "training_rounds": 3,
            "strategy": "FedAvg",
            "strategy_params": {},
        },
    }


def test_learners_set_the_minimum_client_counts_unless_given() -> None:
    training = project_body(
        repo_url="r", flavor="sklearn", data_tags=["d"], customer_id="c", learners=4,
        min_fit_clients=2,
    )["training_configuration"]  # fmt: skip
    assert training["learners"] == 4
    assert training["min_available_clients"] == 4
    assert training["min_fit_clients"] == 2
    assert training["min_evaluate_clients"] == 4


def test_cycles_ask_for_hierarchical_training() -> None:
    training = project_body(
        repo_url="r", flavor="sklearn", data_tags=["d"], customer_id="c", learners=4, rounds=2,
        cycles=3,
    )["training_configuration"]  # fmt: skip
    assert (training["mode"], training["training_cycles"], training["training_rounds"]) == (
        "hierarchical",
        3,
        2,
    )


def test_every_option_reaches_the_body() -> None:
    # Execute
    manager = created_manager()
    code, stdout, stderr = run(
        manager, "project", "create", "https://git.example/r.git", "--flavor", "pytorch",
        "--data-tags", "a, b,", "--ref", "v1.2", "--rounds", "7", "--learners", "5",
        "--min-available-clients", "3", "--min-fit-clients", "2", "--min-evaluate-clients", "1",
        "--strategy", "FedProx", "--strategy-params", '{"proximal_mu": 0.1}',
        "--customer-id", "lab-1",
    )  # fmt: skip
    # Assert
    assert code == 0, stderr
    assert stdout.strip() == "p7"
    assert "flops project watch p7" in stderr
    assert manager.bodies(PROJECTS) == [
        {
            "customerID": "lab-1",
            "ml_repo_url": "https://git.example/r.git",
            "ml_repo_ref": "v1.2",
            "ml_model_flavor": "pytorch",
            "training_configuration": {
                "data_tags": ["a", "b"],
                "training_rounds": 7,
                "learners": 5,
                "min_available_clients": 3,
                "min_fit_clients": 2,
                "min_evaluate_clients": 1,
                "strategy": "FedProx",
                "strategy_params": {"proximal_mu": 0.1},
            },
        }
    ]


def test_the_customer_defaults_to_the_tokens() -> None:
    manager = created_manager()
    code, _, stderr = run(
        manager, "project", "create", "r", "--flavor", "sklearn", "--data-tags", "d"
    )
    assert code == 0, stderr
    assert manager.bodies(PROJECTS)[0]["customerID"] == "acme"


def test_a_422_is_shown_with_its_field_and_exits_1() -> None:
    manager = created_manager()
    manager.routes[("POST", PROJECTS)] = httpx.Response(
        422,
        json={
            "detail": [{"loc": ["body", "ml_repo_url"], "msg": "scheme not allowed", "type": "x"}],
            "message": "body.ml_repo_url: scheme not allowed",
        },
    )
    code, _, stderr = run(
        manager, "project", "create", "ftp://r", "--flavor", "sklearn", "--data-tags", "d",
        "--customer-id", "c",
    )  # fmt: skip
    assert code == 1
    assert "422: ml_repo_url: scheme not allowed" in stderr
    assert "t0ken" not in stderr


def test_watch_exits_1_when_the_project_fails() -> None:
    manager = created_manager()
    failed = [event(1, "state", "pending"), event(2, "state", "failed", "no model_manager.py")]
    manager.routes[("GET", f"{PROJECTS}/p7")] = httpx.Response(
        200,
        json={"id": "p7", "customer_id": "c", "state": "failed", "message": "no model_manager.py",
              "repo_url": "r", "commit": None, "created_at": "", "updated_at": ""},
    )  # fmt: skip
    manager.routes[("GET", f"{PROJECTS}/p7/events/stream")] = httpx.Response(
        200, content=sse(failed)
    )
    code, stdout, stderr = run(
        manager, "project", "create", "r", "--flavor", "sklearn", "--data-tags", "d", "--watch"
    )
    assert code == 1
    assert stdout.strip() == "p7"
    assert "Project p7 failed: no model_manager.py" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy-params", "{oops"], "not valid JSON"),
        (["--strategy-params", "[1]"], "must be a JSON object"),
        (["--flavor", "caffe"], "caffe"),
    ],
)
def test_bad_options_are_refused_before_any_request(args: list[str], message: str) -> None:
    manager = created_manager()
    base = {"--flavor": "sklearn", "--data-tags": "d"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [part for pair in base.items() for part in pair]
    code, _, stderr = run(manager, "project", "create", "r", *flat)
    assert code == 2
    assert message in stderr
    assert manager.requests == []


def test_data_tags_and_strategy_params_parsing() -> None:
    assert parse_data_tags(" a ,b,,c ") == ["a", "b", "c"]
    with pytest.raises(typer.BadParameter):
        parse_data_tags(" , ")
    assert parse_strategy_params(None) == {}
    assert parse_strategy_params('{"eta": 0.05}') == {"eta": 0.05}
