"""Data tags on a real manager: a customer's project reads its own data, never another's.

Issue 12, point 2: customer carol pushed iris under the tag `digits`, and customer acme's
`digits` project then read carol's partitions next to its own and failed ("different
schemas"). Here both push under `digits` and acme's project must train on acme's digits only.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = pytest.mark.e2e

LEARNERS = 3
DIGITS_ROWS = 1797


def _customer(manager: ManagerProcess, customer: str) -> dict[str, str]:
    """Headers with a new token of `customer`, made by the admin."""
    created = manager.api("POST", "/tokens", json={"customer_id": customer})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}"}


def _push(manager: ManagerProcess, headers: dict[str, str], dataset: str) -> dict[str, Any]:
    """Push `dataset` onto every node under the tag `digits`, as the token's customer."""
    mock = {"dataset_name": dataset, "number_of_partitions": LEARNERS, "data_tag": "digits"}
    pushed = manager.api("POST", "/mocks", headers=headers, json={"mock_data_configuration": mock})
    assert pushed.status_code == 201, pushed.text
    result: dict[str, Any] = pushed.json()
    return result


def test_a_customers_project_reads_only_its_own_data(
    manager: ManagerProcess, repo_url: str
) -> None:
    # Prepare: carol's iris and acme's digits, both under `digits`, on the same nodes
    acme, carol = _customer(manager, "acme"), _customer(manager, "carol")
    carols = _push(manager, carol, "iris")
    acmes = _push(manager, acme, "digits")
    body = {  # no customerID: the project is the token's customer's
        "ml_repo_url": repo_url, "ml_model_flavor": "sklearn",
        "training_configuration": {
            "data_tags": ["digits"], "training_rounds": 2, "min_available_clients": LEARNERS,
            "min_fit_clients": LEARNERS, "min_evaluate_clients": LEARNERS,
            "connect_timeout_s": 60,
        },
    }  # fmt: skip

    # Execute
    created = manager.api("POST", "/projects", headers=acme, json=body)
    assert created.status_code == 201, created.text
    project = manager.wait_state(created.json()["id"], FINAL)

    # Assert: it trained, and each learner loaded acme's partition and nothing else
    assert project["customer_id"] == "acme"
    assert project["state"] == "completed", project["message"]
    logs = manager.api("GET", f"/projects/{project['id']}/logs", params={"tail": 10_000}).json()
    loaded = [
        line
        for service in logs["services"]
        if service["role"] == "learner"
        for line in service["lines"]
        if "Loaded" in line and "rows for data tags" in line
    ]
    assert len(loaded) == LEARNERS, logs
    assert all(line.endswith("rows for data tags ['acme:digits']") for line in loaded), loaded
    rows = [int(match.group(1)) for line in loaded if (match := re.search(r"Loaded (\d+)", line))]
    assert sorted(rows) == sorted(p["rows"] for p in acmes["partitions"])
    assert sum(rows) == DIGITS_ROWS
    assert (acmes["stored_data_tag"], carols["stored_data_tag"]) == ("acme:digits", "carol:digits")
