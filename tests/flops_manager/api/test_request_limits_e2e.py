"""A real manager refuses what could run commands or swamp it (issue 12, points 1 and 6).

A ref or repo URL that git would read as an option is a 422 naming the field, and nothing is
created; a body over `FLOPS_MAX_BODY_BYTES` is a 413 before it is parsed, whether it declares
its length or comes chunked; each oversized field is a 422 naming it; and what a user wrote
(data tags, strategy parameters, repo URL) reaches the services in their environment, never
on their command lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flops_manager.core.data_tags import stored_data_tag
from tests.flops_manager.api.conftest import ADMIN_TOKEN, service_pids
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MIB = 1_048_576


def _body(repo_url: str, **fields: Any) -> dict[str, Any]:
    training = fields.pop("training", {})
    return {
        "customerID": "Admin", "ml_repo_url": repo_url, "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": 3, "min_available_clients": 3,
            "min_fit_clients": 3, "min_evaluate_clients": 3, **training,
        },
        **fields,
    }  # fmt: skip


def _projects(manager: ManagerProcess) -> list[dict[str, Any]]:
    listed = manager.api("GET", "/projects")
    assert listed.status_code == 200, listed.text
    return list(listed.json())


def _refused_field(response: httpx.Response) -> list[str]:
    """The fields a 422 names, as dotted paths below `body`."""
    assert response.status_code == 422, response.text
    return [".".join(map(str, e["loc"][1:])) for e in response.json()["detail"]]


@pytest.mark.parametrize("field", ["ml_repo_ref", "ml_repo_url"])
def test_an_option_as_ref_or_url_is_refused_and_runs_nothing(
    manager: ManagerProcess, repo_url: str, tmp_path: Path, field: str
) -> None:
    # Prepare: the probe's body
    marker = tmp_path / f"PWNED_{field}"
    body = _body(repo_url, **{field: f"--upload-pack=touch {marker};git-upload-pack"})
    before = _projects(manager)

    # Execute
    response = manager.api("POST", "/projects", json=body)

    # Assert: a 422 that names the field and says what is allowed; nothing created, nothing run
    assert _refused_field(response) == [field]
    assert "starts with '-'" in response.json()["message"]
    if field == "ml_repo_ref":
        assert "a branch or tag name" in response.json()["message"]
    assert _projects(manager) == before
    assert not marker.exists()


def test_a_body_over_the_limit_is_413_unread(manager: ManagerProcess, repo_url: str) -> None:
    # Prepare: the probe's 8.7 MB data_tags list
    body = _body(repo_url, training={"data_tags": ["t" * 96] * 90_000})
    payload = json.dumps(body).encode()
    assert len(payload) > 8 * MIB
    before = _projects(manager)

    # Execute
    response = manager.api(
        "POST", "/projects", content=payload,
        headers={**ADMIN, "Content-Type": "application/json"},
    )  # fmt: skip

    # Assert
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        f"request body too large: at most {MIB} bytes are accepted (the manager's "
        "FLOPS_MAX_BODY_BYTES)"
    )
    assert _projects(manager) == before


def test_a_chunked_body_over_the_limit_is_413(manager: ManagerProcess, repo_url: str) -> None:
    # Prepare: 10 MB of strategy_params, sent without a Content-Length
    head = json.dumps(_body(repo_url, training={"strategy_params": {}}))[:-4] + '{"eta": "'
    before = _projects(manager)

    def chunks() -> Iterator[bytes]:
        yield head.encode()
        for _ in range(160):
            yield b"x" * 65_536
        yield b'"}}}'

    # Execute
    response = manager.api(
        "POST", "/projects", content=chunks(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )  # fmt: skip

    # Assert
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert f"at most {MIB} bytes" in response.json()["detail"]
    assert _projects(manager) == before


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"training": {"data_tags": [f"t{i}" for i in range(65)]}},
         "training_configuration.data_tags"),
        ({"training": {"data_tags": ["t" * 129]}}, "training_configuration.data_tags"),
        ({"training": {"strategy_params": {"eta": "x" * 17_000}}},
         "training_configuration.strategy_params"),
        ({"ml_repo_url": "https://git.example.org/" + "r" * 2048}, "ml_repo_url"),
        ({"ml_repo_ref": "r" * 257}, "ml_repo_ref"),
        ({"ml_repo_ref": "main..next"}, "ml_repo_ref"),
        ({"customerID": "-x"}, "customerID"),
        ({"customerID": "c" * 129}, "customerID"),
        ({"learner_platforms": ["linux/amd64"] * 1001}, "learner_platforms"),
    ],
)  # fmt: skip
def test_each_oversized_project_field_is_a_422_naming_it(
    manager: ManagerProcess, repo_url: str, fields: dict[str, Any], named: str
) -> None:
    before = _projects(manager)

    response = manager.api("POST", "/projects", json=_body(repo_url, **fields))

    assert any(f == named or f.startswith(f"{named}.") for f in _refused_field(response))
    assert _projects(manager) == before


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"customerID": "-x", "mock_data_configuration": {
            "dataset_name": "digits", "number_of_partitions": 1, "data_tag": "d"}}, "customerID"),
        ({"mock_data_configuration": {
            "dataset_name": "digits", "number_of_partitions": 1, "data_tag": "d" * 129}},
         "mock_data_configuration.data_tag"),
    ],
)  # fmt: skip
def test_oversized_mock_data_fields_are_a_422_naming_them(
    manager: ManagerProcess, body: dict[str, Any], named: str
) -> None:
    assert named in _refused_field(manager.api("POST", "/mocks", json=body))


def test_oversized_token_fields_are_a_422_naming_them(manager: ManagerProcess) -> None:
    response = manager.api("POST", "/tokens", json={"customer_id": "c", "label": "l" * 129})

    assert _refused_field(response) == ["label"]


def _group_processes(pgid: int) -> list[tuple[list[str], dict[str, str]]]:
    """Command line and environment of every live process in the group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            argv = stat.with_name("cmdline").read_bytes().split(b"\0")
            environ = stat.with_name("environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        found.append(([a.decode() for a in argv if a], env))
    return found


def test_services_get_user_data_in_their_environment_not_argv(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare: data on the nodes, and values only this project has
    manager.push_mock_data(partitions=3)
    params = {"fraction_fit": 0.999}
    body = _body(repo_url, training={"training_rounds": 2000, "strategy_params": params})

    # Execute: the project trains; its services are looked at while they run
    created = manager.api("POST", "/projects", json=body)
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    manager.wait_event(project_id, "round_completed")
    processes = [
        process
        for pgid in service_pids(manager.workdir / "data" / "services")
        for process in _group_processes(pgid)
        if any("flops_aggregator" in a or "flops_learner" in a for a in process[0])
    ]
    manager.api("DELETE", f"/projects/{project_id}")
    project = manager.wait_state(project_id, FINAL)

    # Assert: one aggregator and three learners, configured through the environment alone
    roles = sorted("aggregator" if "flops_aggregator" in argv else "learner"
                   for argv, _ in processes)  # fmt: skip
    assert roles == ["aggregator", "learner", "learner", "learner"], project["message"]
    for argv, env in processes:
        command_line = " ".join(argv)
        for user_value in ("digits", "fraction_fit", repo_url, ADMIN_TOKEN):
            assert user_value not in command_line
        assert "--data-tags" not in argv and "--strategy-params" not in argv
        assert "--repo-url" not in argv and "--callback-token" not in argv
        if "flops_learner" in command_line:
            assert env["FLOPS_DATA_TAGS"] == stored_data_tag("Admin", "digits")
        else:
            assert json.loads(env["FLOPS_STRATEGY_PARAMS"]) == params
            assert env["FLOPS_REPO_URL"] == repo_url
